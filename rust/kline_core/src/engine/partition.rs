//! One partition: the ring into its worker, and the worker's state: its symbols and their klines.

use super::dirty::DirtySet;
use super::doorbell::Doorbell;
use super::durable::Durable;
use super::metrics::{PartitionCounters, Tally};
use super::output::{Checkpoint, IdHole, LateTrade, PartitionSnapshot, Record, SlotSnapshot};
use super::sync::lock;
use super::table::{grow_to, SlotState, SlotValue, Table};
use crate::decimal::QuoteRule;
use crate::interval::{Grid, Interval};
use crate::kline::{FlatRun, Kline};
use crate::plausible::{Implausible, TimeLimits, MAX_IDS_PER_SECOND};
use crate::trade::{Skip, Trade};
use crossbeam_channel::Sender;
use crossbeam_queue::ArrayQueue;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

mod apply;
mod durability;
mod emit;
mod halt;
mod outage;
mod sweep;
#[cfg(test)]
mod tests;

/// One symbol of a partition as (slot, generation), or `None` for all of them.
pub type Target = Option<(u32, u32)>;

/// What producers put on a partition's ring. Control items travel on the same ring, so they
/// are ordered with the trades around them.
#[derive(Debug)]
pub enum Item {
    Trade {
        slot: u32,
        generation: u32,
        trade: Trade,
    },
    Batch {
        slot: u32,
        generation: u32,
        trades: Vec<Trade>,
    },
    Add {
        name: Arc<str>,
        spec: SymbolSpec,
        reply: Sender<(u32, u32)>,
    },
    Remove {
        slot: u32,
        generation: u32,
        reply: Sender<()>,
    },
    /// Declare the feed down for one symbol (slot, generation) or all of the partition's.
    FeedDown {
        target: Option<(u32, u32)>,
        since: i64,
        hold: bool,
    },
    Backfill {
        slot: u32,
        generation: u32,
        trades: Vec<Trade>,
        reply: Sender<bool>,
    },
    FeedUp {
        target: Option<(u32, u32)>,
        now: i64,
        holes: Holes,
        reply: Sender<()>,
    },
    /// The symbol's current slots (open klines as a reader sees them).
    Read {
        slot: u32,
        generation: u32,
        reply: Sender<(Vec<SlotValue>, Option<i64>)>,
    },
    /// Replied to once everything before it on this ring has been applied.
    Barrier(Sender<()>),
    /// Copy out what changed since the last acknowledged snapshot (see `DirtySet`).
    Snapshot {
        seq: u64,
        reply: Sender<PartitionSnapshot>,
    },
    AckSnapshot {
        seq: u64,
        reply: Sender<bool>,
    },
    /// Put slots and checkpoints back (restart from stored state).
    Restore {
        slots: Vec<(u32, u32, u16, SlotValue)>,
        checkpoints: Vec<(u32, u32, i64)>,
        hold: bool,
        reply: Sender<usize>,
    },
    /// The exchange halted the symbol (`BREAK`/`HALT`) at clock time `now`: it keeps its state
    /// and emits no quiet periods until `Resume`.
    Halt {
        slot: u32,
        generation: u32,
        now: i64,
        reply: Sender<()>,
    },
    /// Trading again since clock time `now`; the halted span stays without rows.
    Resume {
        slot: u32,
        generation: u32,
        now: i64,
        reply: Sender<()>,
    },
    /// Look at the clock now (tests with a manual clock).
    Tick,
    /// Panics while "applying a trade" of the symbol: tests of supervision.
    Panic {
        slot: u32,
    },
}

/// The part of a partition that producers, consumers and its worker share.
pub struct Shared {
    pub ring: ArrayQueue<Item>,
    /// Closed records in chunks (one queue operation per chunk, not per record).
    pub outbox: ArrayQueue<Vec<Record>>,
    /// Emptied outbox chunks handed back by the consumer for the worker to fill again (no
    /// allocation, no fresh pages on the emitting path in steady state).
    pub spare: ArrayQueue<Vec<Record>>,
    pub late: ArrayQueue<LateTrade>,
    /// Holes in aggTrade ids found on the live path (when id-gap detection is on).
    pub holes: ArrayQueue<IdHole>,
    pub counters: PartitionCounters,
    pub symbols: AtomicUsize,
    /// Symbol slots allocated (live and free): flat while symbols come and go.
    pub allocated: AtomicUsize,
    /// Chunks that did not fit the outbox, after everything in it (the worker adds here
    /// while it is not empty; `take_closed` looks here when the outbox is empty): a poll sees
    /// every closed record the worker has sealed, also after shutdown.
    pub overflow: Mutex<VecDeque<Vec<Record>>>,
    /// Records in `overflow`: zero means the worker may use the outbox without the lock.
    pub spilled: AtomicUsize,
    /// How producers wake the worker when it parks.
    pub bell: Doorbell,
    /// The state of the last acknowledged snapshots: what a panicked symbol is restored to.
    pub durable: Mutex<Durable>,
}

impl Shared {
    pub fn new(ring: usize, outbox: usize, intervals: usize) -> Self {
        Shared {
            ring: ArrayQueue::new(ring),
            outbox: ArrayQueue::new((outbox / OUT_CHUNK).max(4)),
            spare: ArrayQueue::new(SPARE_CHUNKS),
            late: ArrayQueue::new(outbox),
            holes: ArrayQueue::new(outbox),
            counters: PartitionCounters::default(),
            symbols: AtomicUsize::new(0),
            allocated: AtomicUsize::new(0),
            overflow: Mutex::new(VecDeque::new()),
            spilled: AtomicUsize::new(0),
            bell: Doorbell::new(),
            durable: Mutex::new(Durable::new(intervals)),
        }
    }

    /// The oldest sealed chunk of closed records, if any (consumer side).
    pub fn take_closed(&self) -> Option<Vec<Record>> {
        if let Some(chunk) = self.outbox.pop() {
            return Some(chunk);
        }
        if self.spilled.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut over = lock(&self.overflow);
        // Under the lock nothing moves from overflow to outbox: what the outbox holds is older.
        if let Some(chunk) = self.outbox.pop() {
            return Some(chunk);
        }
        let chunk = over.pop_front()?;
        self.spilled.fetch_sub(chunk.len(), Ordering::Release);
        Some(chunk)
    }

    /// Wakes the worker if it sleeps. Call after pushing.
    #[inline]
    pub fn wake(&self) {
        self.bell.ring();
    }
}

#[derive(Debug)]
struct SymbolState {
    name: Arc<str>,
    generation: u32,
    live: bool,
    last_id: i64,
    /// Open time of the latest open or flat period of any interval: earlier trades are late.
    late_before: i64,
    /// Latest trade time applied (event time): the reference for allowed lateness.
    max_time: i64,
    anchor_3d: i64,
    /// How its trades add to quote volume (the engine's rule unless the symbol has its own).
    quote_rule: QuoteRule,
    /// Set while the feed is declared down (see [`Outage`]).
    outage: Option<Box<Outage>>,
    /// While a gap is being replayed: per interval, records opening before this were emitted
    /// as gap before and now come again as revision 1.
    revise_before: Option<Vec<i64>>,
    /// Spans `[from, to]` (trade times) around aggTrade ids nobody supplied: records that
    /// overlap them stay marked gap.
    holes: Vec<(i64, i64)>,
    /// With `mark_partial_start`: just before the symbol's first trade. Records opening at or
    /// before it may lack earlier trades nobody gave us, so they are marked gap.
    partial_before: i64,
    /// A feed-down declared before the first trade promises every trade from this time on
    /// (history rebuilt from REST): only what opens before it can be partial.
    complete_from: i64,
    /// The last exchange halt: when the engine learnt of it and when trading resumed
    /// (`i64::MAX`: never halted / still halted). Its span gets no quiet periods (`halt.rs`).
    halted_at: i64,
    resumed_at: i64,
}

/// What a symbol is added with beyond its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SymbolSpec {
    /// Start of its 3d grid (its listing day); the epoch without one.
    pub anchor_3d: Option<i64>,
    /// Its own quote rule (a COIN-M symbol's contract size); the engine's without one.
    pub quote_rule: Option<QuoteRule>,
}

/// A declared feed-down period of one symbol. Klines keep closing on the clock (marked gap);
/// live trades wait here with the backfill until `feed_up` rewinds the symbol to `saved` and
/// applies them all in id order, re-emitting the affected klines exactly.
#[derive(Debug)]
struct Outage {
    since: i64,
    saved: Vec<SlotValue>,
    saved_last_id: i64,
    saved_late_before: i64,
    pending: Vec<Trade>,
    /// Per interval: the end of the last period emitted as gap.
    emitted_until: Vec<i64>,
    /// Restored from a store and catching up: the clock closes nothing of the symbol until
    /// `feed_up`, so the klines come out once, exact, at revision 0.
    held: bool,
}

/// Emptied chunks kept for reuse per partition.
const SPARE_CHUNKS: usize = 64;

/// Records per outbox chunk.
pub const OUT_CHUNK: usize = 256;

/// Live and backfill trades a symbol may hold while its feed is down; more are counted
/// (`gap_overflow`) and must come from the backfill.
const MAX_GAP_PENDING: usize = 1 << 22;

/// Settings a state needs from the engine.
#[derive(Debug, Clone)]
pub struct PartitionConfig {
    pub grids: Vec<Grid>,
    pub grace: i64,
    pub tz_offset_ms: i64,
    pub late: LatePolicy,
    /// aggTrade ids are contiguous per symbol: a jump puts the symbol in a gap by itself.
    pub detect_id_gaps: bool,
    /// A symbol's first trade (no checkpoint restored) may come mid-period: what it opens is
    /// marked gap (partial), not passed off as exact.
    pub mark_partial_start: bool,
    /// What a trade's time is held to (against the clock, the symbol's last trade, the unit).
    pub limits: TimeLimits,
    pub quote_rule: QuoteRule,
}

/// What `feed_up` does about aggTrade ids still missing after the backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holes {
    /// Report them (`poll_gaps`) and stay down until they come.
    Ask,
    /// Give up on them: the symbol goes on, the klines over them stay marked gap.
    Accept,
    /// Give up, and the exchange has no ids from this one on yet (its history ends before):
    /// held trades claiming them are refused (`implausible_id`), so a bogus id cannot make
    /// every later real trade a duplicate.
    AcceptBelow(i64),
}

/// What happens to a trade whose bucket has already closed. Never a silent drop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatePolicy {
    /// Counted and handed to the late side output.
    Drop,
    /// While the closed kline is the latest of its interval and closed no more than
    /// `allowed_lateness` (event time) before the symbol's latest trade, it is re-emitted
    /// with `revision + 1`; otherwise as `Drop`. Costs one kline of memory per slot.
    Amend { allowed_lateness: i64 },
}

/// `PartitionConfig::limits` as plain numbers for the hot path (`i64::MAX`: not checked).
#[derive(Debug, Clone, Copy)]
struct Bounds {
    lo: i64,
    hi: i64,
    ahead: i64,
    jump: i64,
}

impl Bounds {
    fn of(l: &TimeLimits) -> Self {
        let (lo, hi) = l.unit.range();
        let ahead = l.max_ahead.unwrap_or(i64::MAX);
        Bounds { lo, hi, ahead, jump: l.max_jump.unwrap_or(i64::MAX) }
    }
}

/// A worker's state: symbols, their slots and the records not yet in the outbox.
pub struct PartitionState {
    cfg: PartitionConfig,
    bounds: Bounds,
    n: usize,
    symbols: Vec<SymbolState>,
    free: Vec<u32>,
    table: Table,
    /// Symbols whose checkpoint (last applied id) changed since the last acknowledged snapshot.
    checkpoints: DirtySet,
    /// `LatePolicy::Amend` only: per slot, the latest closed kline and its revision.
    last_closed: Vec<Option<(Kline, u32)>>,
    /// With id-gap detection: per slot, the kline the clock closed last (until a trade opens
    /// the next one). A gap found later rewinds to it, so trades it missed are not late.
    swept: Vec<Option<Box<Kline>>>,
    /// The chunk being filled.
    pending: Vec<Record>,
    pub emitted: bool,
    pub tally: Tally,
    /// Inside `feed_up`: holes are recorded there, not detected as new gaps.
    replaying: bool,
    /// `bucket_start(ends_at)` per interval (see `bucket_end`).
    ends: Vec<i64>,
    ends_at: Option<i64>,
    /// Holes (slot, generation, hole) that found the holes queue full, oldest first: handed on
    /// as it empties (`report_waiting_holes`). A symbol is down while its hole is unrepaired, so
    /// it finds no new hole: at most one per slot waits here.
    unreported: VecDeque<(usize, u32, IdHole)>,
}

impl PartitionState {
    pub fn new(cfg: PartitionConfig) -> Self {
        let n = cfg.grids.len();
        let table = Table::default();
        PartitionState {
            bounds: Bounds::of(&cfg.limits),
            cfg,
            n,
            symbols: Vec::new(),
            free: Vec::new(),
            table,
            checkpoints: DirtySet::default(),
            last_closed: Vec::new(),
            swept: Vec::new(),
            pending: Vec::new(),
            emitted: false,
            tally: Tally::default(),
            replaying: false,
            ends: Vec::new(),
            ends_at: None,
            unreported: VecDeque::new(),
        }
    }

    pub fn add(&mut self, name: Arc<str>, spec: SymbolSpec) -> (u32, u32) {
        let anchor_3d = spec.anchor_3d.unwrap_or(0);
        let quote_rule = spec.quote_rule.unwrap_or(self.cfg.quote_rule);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.symbols.push(SymbolState {
                    name: name.clone(),
                    generation: 0,
                    live: false,
                    last_id: i64::MIN,
                    late_before: i64::MIN,
                    max_time: i64::MIN,
                    anchor_3d,
                    quote_rule,
                    outage: None,
                    revise_before: None,
                    holes: Vec::new(),
                    partial_before: i64::MIN,
                    complete_from: i64::MAX,
                    halted_at: i64::MAX,
                    resumed_at: i64::MAX,
                });
                self.table.grow(self.n);
                self.checkpoints.grow(self.symbols.len());
                if matches!(self.cfg.late, LatePolicy::Amend { .. }) {
                    grow_to(&mut self.last_closed, self.table.len(), None);
                }
                if self.cfg.detect_id_gaps {
                    grow_to(&mut self.swept, self.table.len(), None);
                }
                (self.symbols.len() - 1) as u32
            }
        };
        let s = &mut self.symbols[slot as usize];
        s.name = name;
        s.generation = s.generation.wrapping_add(1);
        s.live = true;
        s.last_id = i64::MIN;
        s.late_before = i64::MIN;
        s.max_time = i64::MIN;
        s.anchor_3d = anchor_3d;
        s.quote_rule = quote_rule;
        s.outage = None;
        s.revise_before = None;
        s.holes.clear();
        s.partial_before = i64::MIN;
        s.complete_from = i64::MAX;
        (s.halted_at, s.resumed_at) = (i64::MAX, i64::MAX);
        (slot, s.generation)
    }

    /// Emits the symbol's open klines as final and frees its slots for reuse.
    pub fn remove(&mut self, shared: &Shared, slot: u32, generation: u32) {
        let sym = slot as usize;
        if self.symbols.get(sym).is_none_or(|s| !s.live || s.generation != generation) {
            return;
        }
        for i in 0..self.n {
            let idx = sym * self.n + i;
            if self.table.state[idx] == SlotState::Open {
                let kline = self.table.kline(idx);
                self.emit_kline(shared, sym, i, kline);
            }
            self.table.clear(idx);
        }
        let s = &mut self.symbols[sym];
        s.live = false;
        s.generation = s.generation.wrapping_add(1);
        self.free.push(slot);
    }

    pub fn allocated_symbols(&self) -> usize {
        self.symbols.len()
    }

    pub fn live_symbols(&self) -> usize {
        self.symbols.iter().filter(|s| s.live).count()
    }

    /// The symbols an item targets: one (if still the same) or all live ones.
    pub fn targets(&self, target: Option<(u32, u32)>) -> Vec<usize> {
        match target {
            Some((slot, generation)) => {
                if self.is_live(slot as usize, generation) {
                    vec![slot as usize]
                } else {
                    vec![]
                }
            }
            None => (0..self.symbols.len()).filter(|&s| self.symbols[s].live).collect(),
        }
    }

    pub fn is_live(&self, sym: usize, generation: u32) -> bool {
        self.symbols.get(sym).is_some_and(|s| s.live && s.generation == generation)
    }

    /// The symbol's slot values, one per interval, and its last applied aggTrade id (`None`:
    /// none yet); empty if the symbol is gone.
    pub fn read(&self, sym: usize, generation: u32) -> (Vec<SlotValue>, Option<i64>) {
        if !self.is_live(sym, generation) {
            return (Vec::new(), None);
        }
        let s = &self.symbols[sym];
        let last = (s.last_id != i64::MIN).then_some(s.last_id);
        ((0..self.n).map(|i| self.table.value(sym * self.n + i)).collect(), last)
    }
}
