//! The partition worker thread: drain the ring, apply, close on time, spin → back off → park.

use super::clock::Clock;
use super::metrics::bump;
use super::partition::{Item, PartitionState, Shared};
use super::sync::lock;
use super::wake::Notifier;
use crossbeam_utils::Backoff;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Items applied before the worker looks at the clock and the outbox again.
const BATCH: usize = 4096;
/// Longest park: the worker re-checks the clock and shutdown at least this often.
const MAX_PARK: Duration = Duration::from_millis(50);

pub struct WorkerContext {
    pub index: usize,
    pub shared: Arc<Shared>,
    pub clock: Arc<dyn Clock>,
    pub notifier: Arc<Notifier>,
    pub shutdown: Arc<AtomicBool>,
    pub errors: Arc<Mutex<Vec<String>>>,
    /// Period of the sweep that closes quiet buckets (gcd of the interval grid), in clock units.
    pub sweep_every: i64,
    pub grace: i64,
    pub ticks_per_ms: i64,
    pub cpu: Option<usize>,
    pub spin: Duration,
    /// Trades are checked against the clock: read it once per item.
    pub reads_clock: bool,
    /// Closed records the worker may hold behind a full outbox before it stops taking items
    /// (producers then see backpressure) and stops sweeping.
    pub max_spill: usize,
}

/// First sweep time strictly after `now`: the next grid boundary plus grace.
fn next_sweep(now: i64, every: i64, grace: i64) -> i64 {
    (now - grace).div_euclid(every) * every + every + grace
}

/// Applies one item; true for a `Tick` (look at the clock before the next item).
fn handle(state: &mut PartitionState, cx: &WorkerContext, item: Item) -> bool {
    let shared = &cx.shared;
    let now = || if cx.reads_clock { cx.clock.now() } else { 0 };
    match item {
        Item::Trade { slot, generation, trade } => {
            state.trade(shared, slot, generation, &trade, now())
        }
        Item::Batch { slot, generation, trades } => {
            let now = now();
            for t in &trades {
                state.trade(shared, slot, generation, t, now);
            }
        }
        Item::Add { name, spec, reply } => {
            let r = state.add(name, spec);
            shared.symbols.store(state.live_symbols(), Ordering::Relaxed);
            shared.allocated.store(state.allocated_symbols(), Ordering::Relaxed);
            let _ = reply.send(r);
        }
        Item::Remove { slot, generation, reply } => {
            state.remove(shared, slot, generation);
            shared.symbols.store(state.live_symbols(), Ordering::Relaxed);
            settle(state, shared);
            let _ = reply.send(());
        }
        Item::Read { slot, generation, reply } => {
            let _ = reply.send(state.read(slot as usize, generation));
        }
        Item::Barrier(reply) => {
            settle(state, shared);
            let _ = reply.send(());
        }
        Item::Snapshot { seq, reply } => {
            settle(state, shared);
            let _ = reply.send(state.snapshot(cx.index, seq));
        }
        Item::AckSnapshot { seq, reply } => {
            let _ = reply.send(state.ack_snapshot(seq));
        }
        Item::Restore { slots, checkpoints, hold, reply } => {
            let _ = reply.send(state.restore(&slots, &checkpoints, hold));
        }
        Item::FeedDown { target, since, hold } => {
            for sym in state.targets(target) {
                state.feed_down(sym, since, hold);
            }
        }
        Item::Backfill { slot, generation, trades, reply } => {
            let ok =
                state.is_live(slot as usize, generation) && state.backfill(slot as usize, &trades);
            let _ = reply.send(ok);
        }
        Item::FeedUp { target, now, holes, reply } => {
            for sym in state.targets(target) {
                state.feed_up(shared, sym, now, holes);
            }
            settle(state, shared);
            let _ = reply.send(());
        }
        Item::Halt { slot, generation, now, reply } => {
            if state.is_live(slot as usize, generation) {
                state.halt(slot as usize, now);
            }
            let _ = reply.send(());
        }
        Item::Resume { slot, generation, now, reply } => {
            if state.is_live(slot as usize, generation) {
                state.resume(shared, slot as usize, now);
            }
            settle(state, shared);
            let _ = reply.send(());
        }
        Item::Tick => return true,
        Item::Panic { slot } => panic!("injected fault while applying a trade of slot {slot}"),
    }
    false
}

/// Closes what the clock has passed once it reaches the next sweep time; returns the time.
/// Not while the spill is over its bound: a later sweep closes the same periods at once.
fn sweep_if_due(state: &mut PartitionState, cx: &WorkerContext, next_sweep_at: &mut i64) -> i64 {
    let now = cx.clock.now();
    if now >= *next_sweep_at && state.spilled(&cx.shared) < cx.max_spill {
        state.sweep(&cx.shared, now);
        *next_sweep_at = next_sweep(now, cx.sweep_every, cx.grace);
    }
    now
}

/// Before answering a caller: what was emitted is in the outbox and the counters are current.
fn settle(state: &mut PartitionState, shared: &Shared) {
    state.flush_spill(shared);
    state.report_waiting_holes(shared);
    state.tally.publish(&shared.counters);
}

/// The symbol an item is about, if it is a trade: what a panic while applying it taints.
fn item_symbol(item: &Item) -> Option<u32> {
    match item {
        Item::Trade { slot, .. } | Item::Batch { slot, .. } | Item::Panic { slot } => Some(*slot),
        _ => None,
    }
}

/// Runs until shutdown. A panic while applying an item is caught, counted and reported; the
/// worker goes on with the next item.
pub fn run(mut state: PartitionState, cx: WorkerContext) {
    if let Some(cpu) = cx.cpu {
        pin_to(cpu);
    }
    let shared = cx.shared.clone();
    let mut next_sweep_at = next_sweep(cx.clock.now(), cx.sweep_every, cx.grace);
    loop {
        let mut worked = false;
        // Over the spill bound, items wait on the ring (backpressure) until a consumer polls;
        // at shutdown they are applied regardless (a poll still finds all they close).
        let stopping = cx.shutdown.load(Ordering::SeqCst);
        let mut intake = true;
        for _ in 0..BATCH {
            if state.spilled(&shared) >= cx.max_spill && !stopping {
                intake = false;
                break;
            }
            let Some(item) = shared.ring.pop() else { break };
            worked = true;
            let tainted = item_symbol(&item);
            let res = catch_unwind(AssertUnwindSafe(|| handle(&mut state, &cx, item)));
            if let Ok(true) = res {
                sweep_if_due(&mut state, &cx, &mut next_sweep_at);
            }
            if let Err(panic) = res {
                bump(&shared.counters.panics);
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                let mut msg = format!("partition {}: worker panicked: {what}", cx.index);
                if let Some(slot) = tainted {
                    let durable = lock(&shared.durable);
                    if let Some((symbol, last_id)) = state.recover_symbol(&durable, slot) {
                        msg += &format!(
                            "; {symbol} restored to its last acknowledged snapshot (checkpoint {last_id}): \
                             trades after it must be replayed"
                        );
                    }
                }
                lock(&cx.errors).push(msg);
            }
        }
        let now = sweep_if_due(&mut state, &cx, &mut next_sweep_at);
        let drained = state.flush_spill(&shared);
        state.report_waiting_holes(&shared);
        state.tally.publish(&shared.counters);
        if state.emitted {
            state.emitted = false;
            cx.notifier.notify();
        }
        if worked {
            continue;
        }
        if cx.shutdown.load(Ordering::SeqCst) && shared.ring.is_empty() {
            state.flush_spill(&shared);
            state.tally.publish(&shared.counters);
            cx.notifier.notify();
            return;
        }
        if !intake {
            // Over the spill bound: wait for the consumer, not for producers.
            shared.bell.sleep(|| cx.shutdown.load(Ordering::SeqCst), Duration::from_millis(1));
            continue;
        }
        idle(&shared, &cx, drained, next_sweep_at - now);
    }
}

/// Spin for `cx.spin`, then back off (yield), then park until woken, the next sweep, or
/// `MAX_PARK`.
fn idle(shared: &Shared, cx: &WorkerContext, drained: bool, until_sweep: i64) {
    if !cx.spin.is_zero() {
        let start = Instant::now();
        while start.elapsed() < cx.spin {
            for _ in 0..64 {
                if !shared.ring.is_empty() {
                    return;
                }
                std::hint::spin_loop();
            }
        }
    }
    let backoff = Backoff::new();
    while !backoff.is_completed() {
        if !shared.ring.is_empty() {
            return;
        }
        backoff.snooze();
    }
    let ms = (until_sweep.max(1) / cx.ticks_per_ms.max(1)).max(1) as u64;
    let mut wait = Duration::from_millis(ms).min(MAX_PARK);
    if !drained {
        wait = wait.min(Duration::from_millis(1)); // the outbox is full: retry soon
    }
    let has_work = || !shared.ring.is_empty() || cx.shutdown.load(Ordering::SeqCst);
    shared.bell.sleep(has_work, wait);
}

/// CPUs this process may run on (`sched_getaffinity`).
pub fn usable_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data; sched_getaffinity writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize).filter(|&c| libc::CPU_ISSET(c, &set)).collect()
    }
}

/// Pins the calling thread to `cpu`; best effort, failure is ignored.
fn pin_to(cpu: usize) {
    // SAFETY: as above; sched_setaffinity reads the set we built.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        let _ = libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}
