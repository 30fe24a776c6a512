//! The streaming engine: partitioned workers turning live trades into klines.
//!
//! Producers (any thread) route each trade by symbol through the RCU [`registry`] to the
//! bounded ring of the partition that owns the symbol; that partition's worker thread owns
//! the symbol's kline slots and emits closed klines into its outbox, which consumers drain
//! with [`Engine::poll`] and acknowledge with [`Engine::ack`].

pub mod clock;
pub mod delivery;
pub mod dirty;
pub mod doorbell;
pub mod durable;
pub mod metrics;
pub mod output;
pub mod partition;
pub mod registry;
pub mod sync;
pub mod table;
pub mod wake;
pub mod worker;

use crate::aggregate::split_run;
use crate::decimal::QuoteRule;
use crate::interval::{Grid, Interval, TimeUnit, DAY_MS, MAX_TZ_OFFSET_MS, MIN_TZ_OFFSET_MS};
use crate::parse::json::{parse_ws_message, Message};
use crate::plausible::TimeLimits;
use crate::symbol::symbol_name;
use crate::trade::Trade;
use clock::{Clock, SystemClock};
use crossbeam_channel::bounded;
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::Backoff;
use delivery::{Budget, Delivery};
use metrics::{bump, PartitionMetrics, ProducerCounters};
use output::{LateTrade, PartitionSnapshot, Record};
use partition::{Book, BookConfig, Item, Shared};
pub use partition::{Holes, LatePolicy};
use registry::{Registry, SymbolRef};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use table::SlotValue;
use thiserror::Error;
use wake::Notifier;

#[derive(Clone)]
pub struct EngineConfig {
    pub intervals: Vec<Interval>,
    /// Partition workers; 0 = one per usable CPU.
    pub partitions: usize,
    pub ring_capacity: usize,
    pub outbox_capacity: usize,
    /// How long past `close_time` the clock waits for stragglers before closing, in clock units.
    pub grace: i64,
    pub time_unit: TimeUnit,
    pub tz_offset_ms: i64,
    /// Pin workers to CPUs from `sched_getaffinity` (best effort).
    pub pin_threads: bool,
    /// Add a symbol on its first trade instead of counting it as unknown.
    pub auto_add: bool,
    pub late_policy: LatePolicy,
    /// Treat a jump in a symbol's aggTrade ids as a feed gap: the symbol goes feed-down by
    /// itself and the hole is reported on [`Engine::poll_gaps`] for a backfill.
    pub detect_id_gaps: bool,
    /// Mark what a symbol's first trade opens as gap: it may have begun before we joined.
    pub mark_partial_start: bool,
    /// How long a producer waits for room in a full ring before reporting backpressure.
    pub push_wait: Duration,
    /// How long an idle worker keeps spinning on its ring before it backs off and parks: a
    /// trade arriving within it is applied without a wake-up (tens of µs on a busy machine).
    pub spin: Duration,
    pub clock: Arc<dyn Clock>,
    /// A trade further ahead of the clock than this (ms) is refused and counted, never
    /// applied; `None`: not checked (a manual clock the caller moves after pushing).
    pub max_ahead_ms: Option<i64>,
    /// A trade further after its symbol's latest trade than this (ms) is refused and
    /// counted; `None`: not checked (the clock bound guards live engines).
    pub max_jump_ms: Option<i64>,
    /// Closed records a partition may hold behind a full outbox; past it, its worker takes
    /// no more items (producers get backpressure) until a consumer polls.
    pub max_spill: usize,
    /// How trades add to quote volume: per trade truncated (spot, USD-M) or exact (COIN-M).
    pub quote_rule: QuoteRule,
}

impl EngineConfig {
    pub fn new(intervals: Vec<Interval>) -> Self {
        EngineConfig {
            intervals,
            partitions: 0,
            ring_capacity: 1 << 16,
            outbox_capacity: 1 << 16,
            grace: 250,
            time_unit: TimeUnit::Millis,
            tz_offset_ms: 0,
            pin_threads: true,
            auto_add: false,
            late_policy: LatePolicy::Drop,
            detect_id_gaps: false,
            mark_partial_start: false,
            push_wait: Duration::from_millis(100),
            spin: Duration::from_micros(50),
            clock: Arc::new(SystemClock::default()),
            max_ahead_ms: Some(DEFAULT_MAX_AHEAD_MS),
            max_jump_ms: None,
            max_spill: 1 << 18,
            quote_rule: QuoteRule::PerTrade,
        }
    }

    /// Refuses settings the engine cannot run with, saying which and why.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |what: String| Err(EngineError::Config(what));
        if self.intervals.is_empty() {
            return Err(EngineError::NoIntervals);
        }
        if self.intervals.len() > 64 {
            return Err(EngineError::TooManyIntervals(self.intervals.len()));
        }
        for (i, iv) in self.intervals.iter().enumerate() {
            if self.intervals[..i].contains(iv) {
                return bad(format!("interval {iv} is given twice"));
            }
        }
        for (name, value, max) in [
            ("ring_capacity", self.ring_capacity, MAX_RING),
            ("outbox_capacity", self.outbox_capacity, MAX_OUTBOX),
            ("max_spill", self.max_spill, MAX_OUTBOX),
        ] {
            if value == 0 || value > max {
                return bad(format!("{name} {value} is not within 1..={max}"));
            }
        }
        if self.partitions > MAX_PARTITIONS {
            return bad(format!("partitions {} is more than {MAX_PARTITIONS}", self.partitions));
        }
        if !(MIN_TZ_OFFSET_MS..=MAX_TZ_OFFSET_MS).contains(&self.tz_offset_ms) {
            return bad(format!(
                "tz_offset_ms {} is not within [-12:00, +14:00]",
                self.tz_offset_ms
            ));
        }
        if !(0..=MAX_GRACE_MS * self.time_unit.per_ms()).contains(&self.grace) {
            return bad(format!("grace {} is not within 0..=1 day", self.grace));
        }
        for (name, v) in [("max_ahead_ms", self.max_ahead_ms), ("max_jump_ms", self.max_jump_ms)] {
            if v.is_some_and(|v| v <= 0) {
                return bad(format!("{name} must be positive (or None: not checked)"));
            }
        }
        Ok(())
    }
}

/// Default bound of a trade's time ahead of the wall clock: wide enough for a badly synced
/// clock, narrow enough that one bad trade cannot poison a symbol for more than minutes.
pub const DEFAULT_MAX_AHEAD_MS: i64 = 5 * 60_000;
const MAX_RING: usize = 1 << 22;
const MAX_OUTBOX: usize = 1 << 24;
const MAX_PARTITIONS: usize = 1024;
const MAX_GRACE_MS: i64 = DAY_MS;
/// How long a worker may sit at its spill bound before a caller waiting on it is told why.
const SPILL_STALL: Duration = Duration::from_secs(1);
/// How long a control request waits for room in a full ring before reporting backpressure.
const CONTROL_ROOM_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, Error, PartialEq, Eq)]
pub enum EngineError {
    #[error("no intervals configured")]
    NoIntervals,
    #[error("{0} intervals configured; at most 64")]
    TooManyIntervals(usize),
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
    #[error("symbol {0:?} is already added")]
    AlreadyAdded(String),
    #[error("partition {0} is full: backpressure (retry, or consume klines faster)")]
    Backpressure(usize),
    #[error("partition {0} did not answer in time")]
    Timeout(usize),
    #[error("the engine is shut down")]
    ShutDown,
    #[error("cannot start worker threads: {0}")]
    Spawn(String),
    #[error(
        "partition {0} holds max_spill closed records nobody polls: poll (or consume closed()) \
         while waiting"
    )]
    Unpolled(usize),
    #[error("bad engine setting: {0}")]
    Config(String),
    #[error(transparent)]
    Symbol(#[from] crate::symbol::SymbolError),
}

/// What one `push_raw` call did with its frames.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawReport {
    /// Frames consumed from the front of the input (all of them unless backpressure stopped
    /// the call): the caller retries from here.
    pub consumed: usize,
    pub trades: usize,
    pub unknown_symbol: usize,
    pub malformed: usize,
    pub other_events: usize,
    pub backpressure: bool,
    /// The first few malformed frames' reasons.
    pub errors: Vec<String>,
}

/// Engine-wide metrics: producers' counters and each partition's.
#[derive(Debug, Clone, Default)]
pub struct EngineMetrics {
    pub messages: u64,
    pub unknown_symbol: u64,
    pub malformed: u64,
    pub other_events: u64,
    pub backpressure: u64,
    pub unacked: usize,
    pub partitions: Vec<PartitionMetrics>,
}

pub struct Engine {
    cfg: EngineConfig,
    grids: Vec<Grid>,
    registry: Registry,
    shared: Vec<Arc<Shared>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    shutdown: Arc<AtomicBool>,
    notifier: Arc<Notifier>,
    errors: Arc<Mutex<Vec<String>>>,
    producer: ProducerCounters,
    delivery: Mutex<Delivery>,
    /// Snapshots handed out and not yet acknowledged, by token.
    snapshots: Mutex<std::collections::HashMap<u64, Vec<PartitionSnapshot>>>,
    snapshot_seq: std::sync::atomic::AtomicU64,
}

/// What changed since the last acknowledged snapshot, across partitions; `ack_snapshot(token)`
/// makes it durable, otherwise it is carried again by the next snapshot.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub token: u64,
    pub parts: Vec<PartitionSnapshot>,
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a.abs()
    } else {
        gcd(b, a % b)
    }
}

/// The period that every interval's boundaries fall on (in ms).
fn sweep_period_ms(intervals: &[Interval], tz_offset_ms: i64) -> i64 {
    let mut g = 0;
    for iv in intervals {
        g = gcd(g, if let Interval::Fixed { ms } = iv { *ms } else { DAY_MS });
        if iv.follows_time_zone() && tz_offset_ms != 0 {
            g = gcd(g, tz_offset_ms);
        }
    }
    g.max(1)
}

const MAX_ERRORS_PER_REPORT: usize = 8;
/// Frames parsed before their trades are enqueued (one ring item per symbol per chunk).
const RAW_CHUNK: usize = 1024;

impl Engine {
    pub fn start(cfg: EngineConfig) -> Result<Engine, EngineError> {
        cfg.validate()?;
        let cpus = worker::usable_cpus();
        let n = match cfg.partitions {
            0 => cpus.len().max(1),
            n => n,
        };
        let grids: Vec<Grid> = cfg
            .intervals
            .iter()
            .map(|&iv| Grid::new(iv, cfg.time_unit, cfg.tz_offset_ms, 0))
            .collect();
        let notifier = Arc::new(Notifier::new().map_err(|e| EngineError::Spawn(e.to_string()))?);
        let engine = Engine {
            grids: grids.clone(),
            registry: Registry::default(),
            shared: (0..n)
                .map(|_| Arc::new(Shared::new(cfg.ring_capacity, cfg.outbox_capacity, grids.len())))
                .collect(),
            workers: Mutex::new(Vec::new()),
            shutdown: Arc::new(AtomicBool::new(false)),
            notifier,
            errors: Arc::new(Mutex::new(Vec::new())),
            producer: ProducerCounters::default(),
            delivery: Mutex::new(Delivery::default()),
            snapshots: Mutex::new(std::collections::HashMap::new()),
            snapshot_seq: std::sync::atomic::AtomicU64::new(0),
            cfg,
        };
        let ticks_per_ms = engine.cfg.time_unit.per_ms();
        let sweep_every =
            sweep_period_ms(&engine.cfg.intervals, engine.cfg.tz_offset_ms) * ticks_per_ms;
        let mut handles = Vec::with_capacity(n);
        for (index, shared) in engine.shared.iter().enumerate() {
            let book = Book::new(BookConfig {
                grids: grids.clone(),
                grace: engine.cfg.grace,
                tz_offset_ms: engine.cfg.tz_offset_ms,
                late: engine.cfg.late_policy,
                detect_id_gaps: engine.cfg.detect_id_gaps,
                mark_partial_start: engine.cfg.mark_partial_start,
                limits: TimeLimits::from_ms(
                    engine.cfg.time_unit,
                    engine.cfg.max_ahead_ms,
                    engine.cfg.max_jump_ms,
                ),
                quote_rule: engine.cfg.quote_rule,
            });
            let cx = worker::WorkerContext {
                index,
                shared: shared.clone(),
                clock: engine.cfg.clock.clone(),
                notifier: engine.notifier.clone(),
                shutdown: engine.shutdown.clone(),
                errors: engine.errors.clone(),
                sweep_every,
                grace: engine.cfg.grace,
                ticks_per_ms,
                cpu: (engine.cfg.pin_threads && !cpus.is_empty()).then(|| cpus[index % cpus.len()]),
                spin: engine.cfg.spin,
                reads_clock: engine.cfg.max_ahead_ms.is_some(),
                max_spill: engine.cfg.max_spill,
            };
            let handle = std::thread::Builder::new()
                .name(format!("kline-worker-{index}"))
                .spawn(move || worker::run(book, cx))
                .map_err(|e| EngineError::Spawn(e.to_string()))?;
            let thread = handle.thread().clone();
            shared.bell.attach(move || thread.unpark());
            handles.push(handle);
        }
        *engine.workers.lock().expect("fresh mutex") = handles;
        Ok(engine)
    }

    pub fn intervals(&self) -> &[Interval] {
        &self.cfg.intervals
    }

    pub fn grids(&self) -> &[Grid] {
        &self.grids
    }

    pub fn partitions(&self) -> usize {
        self.shared.len()
    }

    /// The file descriptor that turns readable when closed records wait (see [`Engine::arm`]).
    pub fn wake_fd(&self) -> i32 {
        self.notifier.fd()
    }

    /// Call before waiting on [`Engine::wake_fd`]: the next closed record makes it readable.
    /// Then poll once more (a record may have arrived before arming).
    pub fn arm(&self) {
        self.notifier.drain();
        self.notifier.arm();
    }

    /// Pushes an item, waiting up to `push_wait` for room.
    fn enqueue(&self, partition: usize, item: Item) -> Result<(), Item> {
        let shared = &self.shared[partition];
        let mut item = match shared.ring.push(item) {
            Ok(()) => {
                shared.wake();
                return Ok(());
            }
            Err(item) => item,
        };
        shared.wake();
        let deadline = Instant::now() + self.cfg.push_wait;
        let backoff = Backoff::new();
        loop {
            if self.shutdown.load(Relaxed) {
                return Err(item);
            }
            if backoff.is_completed() {
                std::thread::sleep(Duration::from_micros(50));
            } else {
                backoff.snooze();
            }
            item = match shared.ring.push(item) {
                Ok(()) => {
                    shared.wake();
                    return Ok(());
                }
                Err(item) => item,
            };
            shared.wake();
            if Instant::now() >= deadline {
                bump(&self.producer.backpressure);
                return Err(item);
            }
        }
    }

    /// Enqueues trades: a full ring is waited out for `push_wait` at most, then backpressure
    /// (the producer's to handle: retry, or consume faster).
    fn enqueue_or_fail(&self, partition: usize, item: Item) -> Result<(), EngineError> {
        if self.shutdown.load(Relaxed) {
            return Err(EngineError::ShutDown);
        }
        self.enqueue(partition, item).map_err(|_| EngineError::Backpressure(partition))
    }

    /// Enqueues a control request (sync, add, remove, …). A full ring is waited out, since
    /// the worker empties it (trades pushed just before fill it for a moment): backpressure
    /// only after CONTROL_ROOM_WAIT, and `Unpolled` at once when the worker is stopped at its
    /// spill bound for SPILL_STALL (only a poll frees it).
    fn enqueue_control(&self, partition: usize, item: Item) -> Result<(), EngineError> {
        let start = Instant::now();
        let mut stuck_since: Option<Instant> = None;
        let mut item = item;
        loop {
            if self.shutdown.load(Relaxed) {
                return Err(EngineError::ShutDown);
            }
            item = match self.enqueue(partition, item) {
                Ok(()) => return Ok(()),
                Err(item) => item,
            };
            let now = Instant::now();
            if self.shared[partition].spilled.load(Relaxed) >= self.cfg.max_spill {
                if now - *stuck_since.get_or_insert(now) >= SPILL_STALL {
                    return Err(EngineError::Unpolled(partition));
                }
            } else {
                stuck_since = None;
            }
            if now - start >= CONTROL_ROOM_WAIT {
                return Err(EngineError::Backpressure(partition));
            }
        }
    }

    /// Adds symbols (idempotent for ones already there); the least loaded partition takes each.
    pub fn add_symbols(&self, symbols: &[(&str, Option<i64>)]) -> Result<(), EngineError> {
        let _guard = self.registry.lock();
        let current = self.registry.snapshot();
        let mut load: Vec<usize> = vec![0; self.shared.len()];
        for r in current.values() {
            load[r.partition as usize] += 1;
        }
        // Send every Add first, then collect the replies: one round trip, not one per symbol.
        let mut seen = std::collections::HashSet::new();
        let mut waiting = Vec::new();
        let mut failed = None;
        let names = symbols
            .iter()
            .map(|&(name, anchor)| Ok((symbol_name(name)?, anchor)))
            .collect::<Result<Vec<_>, EngineError>>()?;
        for (name, anchor_3d) in names {
            if current.contains_key(&*name) || !seen.insert(name.clone()) {
                continue;
            }
            let partition = (0..load.len()).min_by_key(|&p| load[p]).unwrap_or(0);
            load[partition] += 1;
            let (tx, rx) = bounded(1);
            let name: Arc<str> = (*name).into();
            let item = Item::Add { name: name.clone(), anchor_3d, reply: tx };
            if let Err(e) = self.enqueue_control(partition, item) {
                failed = Some(e);
                break;
            }
            waiting.push((name, partition, rx));
        }
        let mut added = Vec::with_capacity(waiting.len());
        for (name, partition, rx) in waiting {
            match rx.recv_timeout(Duration::from_secs(10)) {
                Ok((slot, generation)) => {
                    added.push((name, SymbolRef { partition: partition as u32, slot, generation }))
                }
                Err(_) => failed = failed.or(Some(EngineError::Timeout(partition))),
            }
        }
        // What the workers took is published even if a later one failed: no orphan slots.
        self.registry.publish(|map| map.extend(added));
        failed.map_or(Ok(()), Err)
    }

    pub fn add_symbol(&self, symbol: &str, anchor_3d: Option<i64>) -> Result<(), EngineError> {
        self.add_symbols(&[(symbol, anchor_3d)])
    }

    /// Unmaps the symbol, then has its worker emit its open klines as final and free its slots.
    pub fn remove_symbol(&self, symbol: &str) -> Result<(), EngineError> {
        let symbol = &*symbol_name(symbol)?;
        let _guard = self.registry.lock();
        let r = self.lookup(symbol)?;
        self.registry.publish(|map| {
            map.remove(symbol);
        });
        let (tx, rx) = bounded(1);
        let partition = r.partition as usize;
        self.enqueue_control(
            partition,
            Item::Remove { slot: r.slot, generation: r.generation, reply: tx },
        )?;
        rx.recv_timeout(Duration::from_secs(10)).map_err(|_| EngineError::Timeout(partition))
    }

    pub fn symbols(&self) -> Vec<String> {
        let mut v: Vec<String> = self.registry.snapshot().keys().map(|k| k.to_string()).collect();
        v.sort();
        v
    }

    /// The symbol's place, whatever the case of its name.
    fn lookup(&self, symbol: &str) -> Result<SymbolRef, EngineError> {
        let name = symbol_name(symbol)?;
        self.registry.get(&name).ok_or_else(|| EngineError::UnknownSymbol(name.into_owned()))
    }

    fn route(&self, symbol: &str) -> Option<SymbolRef> {
        if let Some(r) = self.registry.get(symbol) {
            return Some(r);
        }
        // Off the hot path: a name in another case, or one that is no symbol at all.
        let Ok(symbol) = symbol_name(symbol) else {
            bump(&self.producer.unknown_symbol);
            return None;
        };
        let symbol = &*symbol;
        if let Some(r) = self.registry.get(symbol) {
            return Some(r);
        }
        if self.cfg.auto_add && self.add_symbol(symbol, None).is_ok() {
            return self.registry.get(symbol);
        }
        bump(&self.producer.unknown_symbol);
        None
    }

    /// Pushes one trade of `symbol`.
    pub fn push_trade(&self, symbol: &str, trade: Trade) -> Result<(), EngineError> {
        let r = self.route(symbol).ok_or_else(|| EngineError::UnknownSymbol(symbol.into()))?;
        let item = Item::Trade { slot: r.slot, generation: r.generation, trade };
        self.enqueue_or_fail(r.partition as usize, item)
    }

    /// Pushes a batch of one symbol's trades (in id order) as one ring item.
    pub fn push_trades(&self, symbol: &str, trades: Vec<Trade>) -> Result<(), EngineError> {
        let r = self.route(symbol).ok_or_else(|| EngineError::UnknownSymbol(symbol.into()))?;
        let item = Item::Batch { slot: r.slot, generation: r.generation, trades };
        self.enqueue_or_fail(r.partition as usize, item)
    }

    /// Parses Binance websocket frames (aggTrade / trade, plain or combined-stream) and routes
    /// their trades, one ring item per symbol per chunk of frames. Bad frames are counted with
    /// their reason; unknown symbols are counted. On backpressure the report's `consumed` is
    /// where the caller resumes: trades of that chunk already enqueued come again and are
    /// skipped as duplicates by id.
    /// A shut-down engine refuses the call (`ShutDown`) instead of reporting backpressure
    /// that would never clear.
    pub fn push_raw<'a>(
        &self,
        frames: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<RawReport, EngineError> {
        if self.shutdown.load(Relaxed) {
            return Err(EngineError::ShutDown);
        }
        let mut done = RawReport::default();
        let mut chunk = RawReport::default();
        let mut batches: Vec<(SymbolRef, Vec<Trade>)> = Vec::new();
        let mut slots: rustc_hash::FxHashMap<(u32, u32), usize> = Default::default();
        for frame in frames {
            match parse_ws_message(frame) {
                Ok(Message::Trade { symbol, trade }) => match self.route(&symbol) {
                    Some(r) => {
                        let k = *slots.entry((r.partition, r.slot)).or_insert_with(|| {
                            batches.push((r, Vec::new()));
                            batches.len() - 1
                        });
                        batches[k].1.push(trade);
                        chunk.trades += 1;
                    }
                    None => chunk.unknown_symbol += 1,
                },
                Ok(Message::Other { .. }) => chunk.other_events += 1,
                Err(reason) => {
                    chunk.malformed += 1;
                    if done.errors.len() + chunk.errors.len() < MAX_ERRORS_PER_REPORT {
                        chunk.errors.push(reason);
                    }
                }
            }
            chunk.consumed += 1;
            if chunk.consumed == RAW_CHUNK
                && !self.flush_chunk(&mut batches, &mut slots, &mut chunk, &mut done)
            {
                return self.unless_shut_down(done);
            }
        }
        self.flush_chunk(&mut batches, &mut slots, &mut chunk, &mut done);
        self.unless_shut_down(done)
    }

    fn unless_shut_down(&self, report: RawReport) -> Result<RawReport, EngineError> {
        if report.backpressure && self.shutdown.load(Relaxed) {
            return Err(EngineError::ShutDown);
        }
        Ok(report)
    }

    /// Enqueues a chunk's batches and folds its counts into `done`; false on backpressure.
    fn flush_chunk(
        &self,
        batches: &mut Vec<(SymbolRef, Vec<Trade>)>,
        slots: &mut rustc_hash::FxHashMap<(u32, u32), usize>,
        chunk: &mut RawReport,
        done: &mut RawReport,
    ) -> bool {
        slots.clear();
        for (r, mut trades) in batches.drain(..) {
            let item = if trades.len() == 1 {
                Item::Trade {
                    slot: r.slot,
                    generation: r.generation,
                    trade: trades.pop().expect("one"),
                }
            } else {
                Item::Batch { slot: r.slot, generation: r.generation, trades }
            };
            if self.shutdown.load(Relaxed) || self.enqueue(r.partition as usize, item).is_err() {
                done.backpressure = true;
                *chunk = RawReport::default();
                return false;
            }
        }
        let p = &self.producer;
        p.messages.fetch_add(chunk.consumed as u64, Relaxed);
        p.malformed.fetch_add(chunk.malformed as u64, Relaxed);
        p.other_events.fetch_add(chunk.other_events as u64, Relaxed);
        done.consumed += chunk.consumed;
        done.trades += chunk.trades;
        done.unknown_symbol += chunk.unknown_symbol;
        done.malformed += chunk.malformed;
        done.other_events += chunk.other_events;
        done.errors.append(&mut chunk.errors);
        *chunk = RawReport::default();
        true
    }

    /// Returns once every item pushed before this call has been applied by its worker.
    pub fn sync(&self) -> Result<(), EngineError> {
        let mut waits = Vec::new();
        for p in 0..self.shared.len() {
            let (tx, rx) = bounded(1);
            self.enqueue_control(p, Item::Tick)?;
            self.enqueue_control(p, Item::Barrier(tx))?;
            waits.push((p, rx));
        }
        for (p, rx) in waits {
            self.wait_reply(p, &rx)?;
        }
        Ok(())
    }

    /// Waits for a worker's reply; a worker stopped by its spill bound (nobody polls) will not
    /// answer until someone does, which is said at once rather than after the timeout.
    fn wait_reply<T>(
        &self,
        p: usize,
        rx: &crossbeam_channel::Receiver<T>,
    ) -> Result<T, EngineError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stuck_since: Option<Instant> = None;
        loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(v) => return Ok(v),
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                    return Err(EngineError::Timeout(p))
                }
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if self.shared[p].spilled.load(Relaxed) >= self.cfg.max_spill {
                let since = *stuck_since.get_or_insert(now);
                if now - since >= SPILL_STALL {
                    return Err(EngineError::Unpolled(p));
                }
            } else {
                stuck_since = None;
            }
            if now >= deadline {
                return Err(EngineError::Timeout(p));
            }
        }
    }

    /// Closed records (redelivered ones first) worth up to `max` klines, and the token that
    /// acknowledges them. With `expand`, a flat run is worth its periods: one longer than
    /// what is left is cut, its rest handed out next, so no poll expands without bound.
    /// Every record a worker has sealed (all of them after `sync`, or after shutdown) is seen.
    pub fn poll(&self, max: usize, expand: bool) -> (u64, Vec<Record>) {
        let mut delivery = self.delivery.lock().unwrap_or_else(|e| e.into_inner());
        let grids = &self.grids;
        let size = |r: &Record| match r {
            Record::FlatRun { interval, run, .. } if expand => {
                grids[*interval as usize].periods_between(run.start, run.end).max(1) as usize
            }
            _ => 1,
        };
        let cut = |r: Record, n: usize| match r {
            Record::FlatRun { symbol, interval, run, revision, gap } => {
                let (head, rest) = split_run(&grids[interval as usize], &run, n as i64);
                let piece =
                    |run| Record::FlatRun { symbol: symbol.clone(), interval, run, revision, gap };
                (piece(head), rest.map(piece))
            }
            whole => (whole, None),
        };
        let mut out = Vec::new();
        let mut turn = 0;
        let shared = &self.shared;
        let from = std::cell::Cell::new(0);
        delivery.take(
            max,
            &mut out,
            Budget { size: &size, cut: &cut },
            || {
                // Round robin over partitions so one busy partition does not starve the others.
                for _ in 0..shared.len() {
                    let p = turn % shared.len();
                    turn += 1;
                    if let Some(chunk) = shared[p].take_closed() {
                        from.set(p);
                        return Some(chunk);
                    }
                }
                None
            },
            |chunk| {
                let _ = shared[from.get()].spare.push(chunk); // full: dropped, allocated anew
            },
        );
        let token = delivery.register(&out);
        (token, out)
    }

    /// The consumer has durably handled a polled batch: it will not come again.
    pub fn ack(&self, token: u64) -> bool {
        self.delivery.lock().unwrap_or_else(|e| e.into_inner()).ack(token)
    }

    /// The consumer could not handle a polled batch: it comes again on the next poll.
    pub fn nack(&self, token: u64) -> bool {
        let put_back = self.delivery.lock().unwrap_or_else(|e| e.into_inner()).nack(token);
        if put_back {
            self.notifier.signal(); // a waiting consumer should take them again
        }
        put_back
    }

    /// Copies out the open slots and checkpoints that changed since the last acknowledged
    /// snapshot (an unacknowledged snapshot's entries come again). Ordered with pushes: it
    /// reflects every trade pushed before the call.
    pub fn snapshot(&self) -> Result<Snapshot, EngineError> {
        let seq = self.snapshot_seq.fetch_add(1, Relaxed) + 1;
        let mut waits = Vec::new();
        for p in 0..self.shared.len() {
            let (tx, rx) = bounded(1);
            self.enqueue_control(p, Item::Snapshot { seq, reply: tx })?;
            waits.push((p, rx));
        }
        let mut parts = Vec::with_capacity(waits.len());
        for (p, rx) in waits {
            parts.push(
                rx.recv_timeout(Duration::from_secs(30)).map_err(|_| EngineError::Timeout(p))?,
            );
        }
        let mut pending = self.snapshots.lock().unwrap_or_else(|e| e.into_inner());
        pending.retain(|&t, _| t > seq.saturating_sub(16)); // superseded ones can no longer be acked
        pending.insert(seq, parts.clone());
        Ok(Snapshot { token: seq, parts })
    }

    /// The snapshot is durably stored: its dirty marks are cleared. False if it was superseded
    /// by a newer snapshot (whose entries include it) or is unknown.
    pub fn ack_snapshot(&self, token: u64) -> Result<bool, EngineError> {
        let Some(parts) = self.snapshots.lock().unwrap_or_else(|e| e.into_inner()).remove(&token)
        else {
            return Ok(false);
        };
        let mut all = true;
        for part in &parts {
            let (tx, rx) = bounded(1);
            self.enqueue_control(part.partition, Item::AckSnapshot { seq: part.seq, reply: tx })?;
            let ok = rx
                .recv_timeout(Duration::from_secs(30))
                .map_err(|_| EngineError::Timeout(part.partition))?;
            if ok {
                self.shared[part.partition]
                    .durable
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .absorb(part);
            }
            all &= ok;
        }
        Ok(all)
    }

    /// Puts stored state back (after a restart): open or flat slots by (symbol, interval
    /// index) and checkpoints by symbol. Symbols must have been added. Returns entries applied.
    ///
    /// With `hold`, each restored symbol then waits for the trades after its checkpoint (e.g.
    /// REST aggTrades `fromId`): its live trades are held and the clock closes none of its
    /// klines until [`Engine::backfill`] and [`Engine::feed_up`], so what was missed while the
    /// process was down comes out once, exact, as if it had never stopped.
    pub fn restore(
        &self,
        slots: &[(&str, u16, SlotValue)],
        checkpoints: &[(&str, i64)],
        hold: bool,
    ) -> Result<usize, EngineError> {
        let n = self.shared.len();
        let mut per_slots: Vec<Vec<(u32, u32, u16, SlotValue)>> = vec![Vec::new(); n];
        let mut per_ck: Vec<Vec<(u32, u32, i64)>> = vec![Vec::new(); n];
        let mut durable: Vec<PartitionSnapshot> = vec![PartitionSnapshot::default(); n];
        for &(symbol, interval, value) in slots {
            let r = self
                .registry
                .get(symbol)
                .ok_or_else(|| EngineError::UnknownSymbol(symbol.into()))?;
            per_slots[r.partition as usize].push((r.slot, r.generation, interval, value));
            let slot = output::SlotSnapshot { symbol: symbol.into(), interval, value };
            durable[r.partition as usize].slots.push(slot);
        }
        for &(symbol, last_id) in checkpoints {
            let r = self
                .registry
                .get(symbol)
                .ok_or_else(|| EngineError::UnknownSymbol(symbol.into()))?;
            per_ck[r.partition as usize].push((r.slot, r.generation, last_id));
            let ck = output::Checkpoint { symbol: symbol.into(), last_id };
            durable[r.partition as usize].checkpoints.push(ck);
        }
        // Restored state came from the store: it is durable (what a panic falls back to).
        for (p, d) in durable.iter().enumerate() {
            self.shared[p].durable.lock().unwrap_or_else(|e| e.into_inner()).absorb(d);
        }
        let mut applied = 0;
        for (p, (slots, checkpoints)) in per_slots.into_iter().zip(per_ck).enumerate() {
            if slots.is_empty() && checkpoints.is_empty() {
                continue;
            }
            let (tx, rx) = bounded(1);
            self.enqueue_control(p, Item::Restore { slots, checkpoints, hold, reply: tx })?;
            applied +=
                rx.recv_timeout(Duration::from_secs(30)).map_err(|_| EngineError::Timeout(p))?;
        }
        Ok(applied)
    }

    fn target(&self, symbol: Option<&str>) -> Result<Vec<(usize, partition::Target)>, EngineError> {
        Ok(match symbol {
            Some(sym) => {
                let r = self.lookup(sym)?;
                vec![(r.partition as usize, Some((r.slot, r.generation)))]
            }
            None => (0..self.shared.len()).map(|p| (p, None)).collect(),
        })
    }

    /// Declares the feed of `symbol` (or of all symbols) down since `since`: klines that close
    /// meanwhile are marked gap and live trades wait for [`Engine::backfill`] and
    /// [`Engine::feed_up`], which re-emit the affected klines exactly (revision 1).
    ///
    /// With `hold`, nothing of the symbol closes at all until `feed_up`: no gap records, no
    /// revisions, for a catch-up expected to be short (history at start-up, a restart).
    pub fn feed_down(
        &self,
        symbol: Option<&str>,
        since: i64,
        hold: bool,
    ) -> Result<(), EngineError> {
        for (p, target) in self.target(symbol)? {
            self.enqueue_control(p, Item::FeedDown { target, since, hold })?;
        }
        Ok(())
    }

    /// Older trades of a symbol whose feed is down (e.g. REST aggTrades `fromId`), any order,
    /// duplicates allowed. False if the symbol is not in a declared gap.
    pub fn backfill(&self, symbol: &str, trades: Vec<Trade>) -> Result<bool, EngineError> {
        let r = self.lookup(symbol)?;
        let (tx, rx) = bounded(1);
        let p = r.partition as usize;
        self.enqueue_control(
            p,
            Item::Backfill { slot: r.slot, generation: r.generation, trades, reply: tx },
        )?;
        rx.recv_timeout(Duration::from_secs(30)).map_err(|_| EngineError::Timeout(p))
    }

    /// The feed of `symbol` (or all) is back and the backfill is in: replay and re-emit. If ids
    /// are still missing, the symbol goes down again from there and the hole is reported on
    /// [`Engine::poll_gaps`] (`Holes::Ask`), or given up on (see [`Holes`]).
    pub fn feed_up(&self, symbol: Option<&str>, holes: Holes) -> Result<(), EngineError> {
        let now = self.cfg.clock.now();
        let mut waits = Vec::new();
        for (p, target) in self.target(symbol)? {
            let (tx, rx) = bounded(1);
            self.enqueue_control(p, Item::FeedUp { target, now, holes, reply: tx })?;
            waits.push((p, rx));
        }
        for (p, rx) in waits {
            rx.recv_timeout(Duration::from_secs(60)).map_err(|_| EngineError::Timeout(p))?;
        }
        Ok(())
    }

    /// The exchange halted `symbol` (status `BREAK`/`HALT`): it keeps its slots and state, its
    /// open klines close as usual, and no quiet period from now on is emitted as flat until
    /// [`Engine::resume`]. Binance writes no rows while trading is halted.
    pub fn halt(&self, symbol: &str) -> Result<(), EngineError> {
        let now = self.cfg.clock.now();
        self.halt_or_resume(symbol, |slot, generation, reply| Item::Halt {
            slot,
            generation,
            now,
            reply,
        })
    }

    /// `symbol` trades again (status `TRADING`): the halted span gets no rows; from the period
    /// holding the clock's now on, quiet periods are flat again and the next trade opens a
    /// kline. A trade timed after the halt resumes the symbol by itself; no effect on a
    /// symbol that is not halted.
    pub fn resume(&self, symbol: &str) -> Result<(), EngineError> {
        let now = self.cfg.clock.now();
        self.halt_or_resume(symbol, |slot, generation, reply| Item::Resume {
            slot,
            generation,
            now,
            reply,
        })
    }

    fn halt_or_resume(
        &self,
        symbol: &str,
        item: impl FnOnce(u32, u32, crossbeam_channel::Sender<()>) -> Item,
    ) -> Result<(), EngineError> {
        let r = self.lookup(symbol)?;
        let (tx, rx) = bounded(1);
        let p = r.partition as usize;
        self.enqueue_or_fail(p, item(r.slot, r.generation, tx))?;
        rx.recv_timeout(Duration::from_secs(30)).map_err(|_| EngineError::Timeout(p))
    }

    /// The symbol's current state per interval (ordered after every push made before the
    /// call): what a reader sees of the open klines.
    pub fn read(&self, symbol: &str) -> Result<(Vec<SlotValue>, Option<i64>), EngineError> {
        let r = self.lookup(symbol)?;
        let (tx, rx) = bounded(1);
        let p = r.partition as usize;
        self.enqueue_control(p, Item::Read { slot: r.slot, generation: r.generation, reply: tx })?;
        rx.recv_timeout(Duration::from_secs(30)).map_err(|_| EngineError::Timeout(p))
    }

    /// Makes the symbol's worker panic as if applying one of its trades (supervision tests).
    #[doc(hidden)]
    pub fn inject_panic(&self, symbol: &str) -> Result<(), EngineError> {
        let r = self.lookup(symbol)?;
        self.enqueue_control(r.partition as usize, Item::Panic { slot: r.slot })
    }

    /// Holes found in aggTrade ids (with `detect_id_gaps`), oldest first, up to `max`.
    pub fn poll_gaps(&self, max: usize) -> Vec<output::IdGap> {
        self.drain_side(max, |s| &s.gaps)
    }

    /// Late trades (bucket already closed), up to `max`.
    pub fn poll_late(&self, max: usize) -> Vec<LateTrade> {
        self.drain_side(max, |s| &s.late)
    }

    /// Up to `max` items of one side output, partition after partition.
    fn drain_side<T>(&self, max: usize, queue: impl Fn(&Shared) -> &ArrayQueue<T>) -> Vec<T> {
        let mut out = Vec::new();
        for shared in &self.shared {
            while out.len() < max {
                match queue(shared).pop() {
                    Some(item) => out.push(item),
                    None => break,
                }
            }
        }
        out
    }

    /// Errors reported by workers (caught panics), oldest first; taking them clears them.
    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *self.errors.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub fn metrics(&self) -> EngineMetrics {
        let p = &self.producer;
        let now = self.cfg.clock.now();
        EngineMetrics {
            messages: p.messages.load(Relaxed),
            unknown_symbol: p.unknown_symbol.load(Relaxed),
            malformed: p.malformed.load(Relaxed),
            other_events: p.other_events.load(Relaxed),
            backpressure: p.backpressure.load(Relaxed),
            unacked: self.delivery.lock().unwrap_or_else(|e| e.into_inner()).unacked(),
            partitions: self
                .shared
                .iter()
                .map(|s| PartitionMetrics {
                    ring_depth: s.ring.len(),
                    symbols: s.symbols.load(Relaxed),
                    allocated: s.allocated.load(Relaxed),
                    spilled: s.spilled.load(Relaxed),
                    lag: match s.counters.watermark.load(Relaxed) {
                        0 => 0,
                        w => now - w,
                    },
                    ..s.counters.read()
                })
                .collect(),
        }
    }

    /// Stops the workers after they apply what is already on their rings, and joins them.
    pub fn shutdown(&self) {
        self.shutdown.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in &self.shared {
            s.bell.force();
        }
        let handles = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        for h in handles {
            let _ = h.join();
        }
        self.notifier.signal();
    }

    pub fn is_shut_down(&self) -> bool {
        self.shutdown.load(Relaxed)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
