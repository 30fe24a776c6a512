//! The streaming engine: partitioned workers turning live trades into klines.
//!
//! Producers (any thread) route each trade by symbol through the RCU [`registry`] to the
//! bounded ring of the partition that owns the symbol; that partition's worker thread owns
//! the symbol's kline slots and emits closed klines into its outbox, which consumers drain
//! with [`Engine::poll`] and acknowledge with [`Engine::ack`].

pub mod clock;
pub mod columns;
pub mod config;
mod consume;
pub mod delivery;
pub mod dirty;
pub mod doorbell;
pub mod durable;
pub mod error;
pub mod metrics;
pub mod output;
pub mod partition;
mod produce;
mod recovery;
pub mod registry;
pub mod sync;
pub mod table;
pub mod wake;
pub mod worker;

pub use config::{EngineConfig, DEFAULT_MAX_AHEAD_MS, MAX_OUTBOX};
pub use error::EngineError;
pub use partition::{Holes, LatePolicy, SymbolSpec};
pub use produce::RawReport;
pub use recovery::Snapshot;

use crate::interval::{Grid, Interval, DAY_MS};
use crate::plausible::TimeLimits;
use crate::symbol::symbol_name;
use crossbeam_channel::{bounded, Receiver, Sender};
use delivery::Delivery;
use metrics::{PartitionMetrics, ProducerCounters};
use output::PartitionSnapshot;
use partition::{Item, PartitionConfig, PartitionState, Shared};
use produce::SPILL_STALL;
use registry::{Registry, SymbolRef};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use sync::lock;
use table::SlotValue;
use wake::Notifier;

/// How long a caller waits for a worker's answer to a request (a `feed_up` replays every
/// trade held during an outage, the longest of them).
const REPLY_WAIT: Duration = Duration::from_secs(60);

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
            let state = PartitionState::new(PartitionConfig {
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
                .spawn(move || worker::run(state, cx))
                .map_err(|e| EngineError::Spawn(e.to_string()))?;
            let thread = handle.thread().clone();
            shared.bell.attach(move || thread.unpark());
            handles.push(handle);
        }
        *lock(&engine.workers) = handles;
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

    /// Adds symbols with their 3d anchors (see [`Engine::add_symbols_with`]).
    pub fn add_symbols(&self, symbols: &[(&str, Option<i64>)]) -> Result<(), EngineError> {
        let specs: Vec<(&str, SymbolSpec)> = symbols
            .iter()
            .map(|&(name, anchor_3d)| (name, SymbolSpec { anchor_3d, quote_rule: None }))
            .collect();
        self.add_symbols_with(&specs)
    }

    /// Adds symbols (idempotent for ones already there); the least loaded partition takes each.
    pub fn add_symbols_with(&self, symbols: &[(&str, SymbolSpec)]) -> Result<(), EngineError> {
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
            .map(|&(name, spec)| Ok((symbol_name(name)?, spec)))
            .collect::<Result<Vec<_>, EngineError>>()?;
        for (name, spec) in names {
            if current.contains_key(&*name) || !seen.insert(name.clone()) {
                continue;
            }
            let partition = (0..load.len()).min_by_key(|&p| load[p]).unwrap_or(0);
            load[partition] += 1;
            let name: Arc<str> = (*name).into();
            match self.send(partition, |reply| Item::Add { name: name.clone(), spec, reply }) {
                Ok(rx) => waiting.push((name, partition, rx)),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let mut added = Vec::with_capacity(waiting.len());
        for (name, partition, rx) in waiting {
            match self.wait_reply(partition, &rx) {
                Ok((slot, generation)) => {
                    added.push((name, SymbolRef { partition: partition as u32, slot, generation }))
                }
                Err(e) => failed = failed.or(Some(e)),
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
        self.request(r.partition as usize, |reply| Item::Remove {
            slot: r.slot,
            generation: r.generation,
            reply,
        })
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

    /// Returns once every item pushed before this call has been applied by its worker.
    pub fn sync(&self) -> Result<(), EngineError> {
        let mut waits = Vec::new();
        for p in 0..self.shared.len() {
            self.enqueue_control(p, Item::Tick)?;
            waits.push((p, self.send(p, Item::Barrier)?));
        }
        waits.into_iter().try_for_each(|(p, rx)| self.wait_reply(p, &rx))
    }

    /// Sends a request to partition `p`'s worker (a full ring is waited out, see
    /// `enqueue_control`); its answer comes on the receiver returned.
    fn send<T>(
        &self,
        p: usize,
        item: impl FnOnce(Sender<T>) -> Item,
    ) -> Result<Receiver<T>, EngineError> {
        let (tx, rx) = bounded(1);
        self.enqueue_control(p, item(tx))?;
        Ok(rx)
    }

    /// One request to partition `p`'s worker and its answer.
    fn request<T>(&self, p: usize, item: impl FnOnce(Sender<T>) -> Item) -> Result<T, EngineError> {
        let rx = self.send(p, item)?;
        self.wait_reply(p, &rx)
    }

    /// Waits up to REPLY_WAIT for a worker's reply; a worker stopped by its spill bound
    /// (nobody polls) will not answer until someone does, which is said at once.
    fn wait_reply<T>(&self, p: usize, rx: &Receiver<T>) -> Result<T, EngineError> {
        let deadline = Instant::now() + REPLY_WAIT;
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

    /// The symbol's current state per interval (ordered after every push made before the
    /// call): what a reader sees of the open klines.
    pub fn read(&self, symbol: &str) -> Result<(Vec<SlotValue>, Option<i64>), EngineError> {
        let r = self.lookup(symbol)?;
        self.request(r.partition as usize, |reply| Item::Read {
            slot: r.slot,
            generation: r.generation,
            reply,
        })
    }

    /// Makes the symbol's worker panic as if applying one of its trades (supervision tests).
    #[doc(hidden)]
    pub fn inject_panic(&self, symbol: &str) -> Result<(), EngineError> {
        let r = self.lookup(symbol)?;
        self.enqueue_control(r.partition as usize, Item::Panic { slot: r.slot })
    }

    /// Errors reported by workers (caught panics), oldest first; taking them clears them.
    pub fn take_errors(&self) -> Vec<String> {
        std::mem::take(&mut *lock(&self.errors))
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
            unacked: lock(&self.delivery).unacked(),
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
        let handles = std::mem::take(&mut *lock(&self.workers));
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
