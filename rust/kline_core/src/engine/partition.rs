//! One partition: the ring into its worker, and the worker's book of symbols and klines.

use super::dirty::DirtySet;
use super::doorbell::Doorbell;
use super::durable::Durable;
use super::metrics::{PartitionCounters, Tally};
use super::output::{Checkpoint, IdGap, LateTrade, PartitionSnapshot, Record, SlotSnapshot};
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

mod halt;

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
        anchor_3d: Option<i64>,
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
    pub gaps: ArrayQueue<IdGap>,
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
            gaps: ArrayQueue::new(outbox),
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
    /// Set while the feed is declared down (see [`Gap`]).
    gap: Option<Box<Gap>>,
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

/// A declared feed-down period of one symbol. Klines keep closing on the clock (marked gap);
/// live trades wait here with the backfill until `feed_up` rewinds the symbol to `saved` and
/// applies them all in id order, re-emitting the affected klines exactly.
#[derive(Debug)]
struct Gap {
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

/// Settings a book needs from the engine.
#[derive(Debug, Clone)]
pub struct BookConfig {
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

/// `BookConfig::limits` as plain numbers for the hot path (`i64::MAX`: not checked).
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
pub struct Book {
    cfg: BookConfig,
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
    /// Holes (slot, generation, hole) that found the gaps queue full, oldest first: handed on
    /// as it empties (`report_waiting_gaps`). A symbol is down while its hole is unrepaired, so
    /// it finds no new hole: at most one per slot waits here.
    unreported: VecDeque<(usize, u32, IdGap)>,
}

impl Book {
    pub fn new(cfg: BookConfig) -> Self {
        let n = cfg.grids.len();
        let table = Table { quote_rule: cfg.quote_rule, ..Table::default() };
        Book {
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

    /// Asks for a repair of `hole` in slot `sym`: on the gaps queue, or, while it is full,
    /// after the ones already waiting (never dropped: the symbol stays down until repaired).
    fn report_gap(&mut self, shared: &Shared, sym: usize, hole: IdGap) {
        let generation = self.symbols[sym].generation;
        self.unreported.push_back((sym, generation, hole));
        self.report_waiting_gaps(shared);
    }

    /// Moves waiting holes onto the gaps queue as it has room, skipping those of symbols
    /// removed or no longer down since.
    pub fn report_waiting_gaps(&mut self, shared: &Shared) {
        while let Some((sym, generation, hole)) = self.unreported.pop_front() {
            if !self.is_live(sym, generation) || self.symbols[sym].gap.is_none() {
                continue;
            }
            if let Err(hole) = shared.gaps.push(hole) {
                self.unreported.push_front((sym, generation, hole));
                return;
            }
        }
    }

    fn grid(&self, sym: usize, i: usize) -> Grid {
        let g = self.cfg.grids[i];
        if g.interval == Interval::ThreeDay {
            Grid::new(g.interval, g.unit, self.cfg.tz_offset_ms, self.symbols[sym].anchor_3d)
        } else {
            g
        }
    }

    fn emit(&mut self, shared: &Shared, r: Record) {
        match &r {
            Record::Kline { .. } => self.tally.closed += 1,
            Record::FlatRun { .. } => self.tally.flat_runs += 1,
        }
        self.pending.push(r);
        if self.pending.len() >= OUT_CHUNK {
            self.flush_spill(shared);
        }
    }

    /// Gap flag and revision of a record for `[start, end)` of the symbol's interval `i`.
    fn marks(&mut self, sym: usize, i: usize, start: i64, end: i64) -> (bool, u32) {
        let s = &mut self.symbols[sym];
        let mut gap =
            start <= s.partial_before || s.holes.iter().any(|&(a, b)| start <= b && end > a);
        if let Some(g) = s.gap.as_mut().filter(|g| end > g.since) {
            gap = true;
            g.emitted_until[i] = g.emitted_until[i].max(end);
        }
        let revision = s.revise_before.as_ref().is_some_and(|r| start < r[i]).into();
        (gap, revision)
    }

    fn emit_kline(&mut self, shared: &Shared, sym: usize, i: usize, kline: Kline) {
        let (gap, revision) = self.marks(sym, i, kline.open_time, kline.close_time + 1);
        if !self.last_closed.is_empty() {
            self.last_closed[sym * self.n + i] = Some((kline, revision));
        }
        let symbol = self.symbols[sym].name.clone();
        self.emit(shared, Record::Kline { symbol, interval: i as u16, kline, revision, gap });
    }

    fn emit_flat(&mut self, shared: &Shared, sym: usize, i: usize, run: FlatRun) {
        let (gap, revision) = self.marks(sym, i, run.start, run.end);
        if !self.last_closed.is_empty() {
            self.last_closed[sym * self.n + i] = None; // flat periods follow: not amendable
        }
        let symbol = self.symbols[sym].name.clone();
        self.emit(shared, Record::FlatRun { symbol, interval: i as u16, run, revision, gap });
    }

    /// Seals the chunk being filled and hands it on: to the outbox, or behind it to the
    /// overflow when the outbox is full (never dropped); moves overflow into the outbox as room
    /// appears. True when nothing waits in the overflow.
    pub fn flush_spill(&mut self, shared: &Shared) -> bool {
        let chunk = (!self.pending.is_empty()).then(|| {
            let fresh = shared.spare.pop().unwrap_or_else(|| Vec::with_capacity(OUT_CHUNK));
            std::mem::replace(&mut self.pending, fresh)
        });
        if shared.spilled.load(Ordering::Acquire) == 0 {
            let Some(chunk) = chunk else { return true };
            match shared.outbox.push(chunk) {
                Ok(()) => {
                    self.emitted = true;
                    return true;
                }
                Err(chunk) => return self.overflow(shared, Some(chunk)),
            }
        }
        self.overflow(shared, chunk)
    }

    #[cold]
    fn overflow(&mut self, shared: &Shared, chunk: Option<Vec<Record>>) -> bool {
        let mut over = lock(&shared.overflow);
        if let Some(chunk) = chunk {
            shared.spilled.fetch_add(chunk.len(), Ordering::Release);
            over.push_back(chunk);
        }
        while let Some(chunk) = over.pop_front() {
            let len = chunk.len();
            if let Err(chunk) = shared.outbox.push(chunk) {
                over.push_front(chunk);
                break;
            }
            shared.spilled.fetch_sub(len, Ordering::Release);
        }
        self.emitted = true; // a consumer may take from the overflow as well
        over.is_empty()
    }

    /// Closed records not yet in the outbox.
    #[inline]
    pub fn spilled(&self, shared: &Shared) -> usize {
        self.pending.len() + shared.spilled.load(Ordering::Relaxed)
    }

    pub fn add(&mut self, name: Arc<str>, anchor_3d: Option<i64>) -> (u32, u32) {
        let anchor_3d = anchor_3d.unwrap_or(0);
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
                    gap: None,
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
        s.gap = None;
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

    /// Applies one trade of the symbol in `slot`; `now` is the clock (read only when a bound
    /// against it is set).
    #[inline]
    pub fn trade(&mut self, shared: &Shared, slot: u32, generation: u32, t: &Trade, now: i64) {
        let sym = slot as usize;
        let c = &mut self.tally;
        let Some(s) = self.symbols.get_mut(sym).filter(|s| s.live && s.generation == generation)
        else {
            c.stale_symbol += 1;
            return;
        };
        // Plain bounds first (a few compares); the limits themselves decide what fails them.
        let b = self.bounds;
        let first = s.max_time == i64::MIN;
        let clear = t.time >= b.lo
            && t.time < b.hi
            && t.time <= now.saturating_add(b.ahead)
            && (first
                || (t.time <= s.max_time.saturating_add(b.jump)
                    && t.id <= s.last_id.saturating_add(MAX_IDS_PER_SECOND)));
        if !clear && self.refuse_implausible(sym, t, now) {
            return;
        }
        let (c, s) = (&mut self.tally, &mut self.symbols[sym]);
        if s.gap.is_some() {
            self.hold(sym, t);
            return;
        }
        if t.id <= s.last_id {
            c.duplicates += 1;
            return;
        }
        if self.cfg.detect_id_gaps
            && !self.replaying
            && s.last_id != i64::MIN
            && t.id > s.last_id + 1
        {
            let gap = IdGap {
                symbol: s.name.clone(),
                from_id: s.last_id + 1,
                to_id: t.id - 1,
                since: s.max_time,
            };
            c.id_gaps += 1;
            self.feed_down(sym, gap.since, false);
            self.hold(sym, t);
            self.report_gap(shared, sym, gap);
            return;
        }
        match t.defect() {
            Some(Skip::Placeholder) => return c.placeholders += 1,
            Some(_) => return c.invalid += 1,
            None => {}
        }
        if s.last_id == i64::MIN && self.cfg.mark_partial_start {
            s.partial_before = t.time.min(s.complete_from) - 1;
        }
        s.last_id = t.id;
        self.checkpoints.mark(sym);
        if t.time < s.late_before {
            c.late += 1;
            if self.amend(shared, sym, t) {
                self.tally.late_amended += 1;
            } else if shared
                .late
                .push(LateTrade { symbol: self.symbols[sym].name.clone(), trade: *t })
                .is_err()
            {
                self.tally.late_overflow += 1;
            }
            return;
        }
        c.trades += 1;
        s.max_time = s.max_time.max(t.time);
        c.watermark = c.watermark.max(t.time);
        self.resumed_by_trade(sym, t.time);
        let mut roll = self.table.apply_run(sym * self.n, self.n, t);
        while roll != 0 {
            let i = roll.trailing_zeros() as usize;
            roll &= roll - 1;
            self.roll(shared, sym, i, t);
        }
    }

    /// The full check of a trade that failed the plain bounds: counts it by reason and says
    /// whether it is refused.
    #[cold]
    fn refuse_implausible(&mut self, sym: usize, t: &Trade, now: i64) -> bool {
        let s = &self.symbols[sym];
        let limits = self.cfg.limits;
        let last = (s.max_time != i64::MIN).then_some(s.max_time);
        let mut verdict = limits.check(t.time, Some(now), last);
        if verdict.is_ok() && last.is_some() && t.id > s.last_id {
            verdict = limits.check_id(t.id, t.time, s.last_id, s.max_time);
        }
        let c = &mut self.tally;
        match verdict {
            Ok(()) => return false,
            Err(Implausible::Unit) => c.implausible_unit += 1,
            Err(Implausible::AheadOfClock) => c.implausible_ahead += 1,
            Err(Implausible::Jump) => c.implausible_jump += 1,
            Err(Implausible::IdJump) => c.implausible_id += 1,
        }
        true
    }

    /// `LatePolicy::Amend`: adds a late trade to the open bucket or to the latest closed kline
    /// of every interval and re-emits those with `revision + 1`; false (nothing changed) if
    /// any interval cannot take it, so intervals never disagree.
    fn amend(&mut self, shared: &Shared, sym: usize, t: &Trade) -> bool {
        let LatePolicy::Amend { allowed_lateness } = self.cfg.late else { return false };
        let horizon = self.symbols[sym].max_time - allowed_lateness;
        let base = sym * self.n;
        let fits = (0..self.n).all(|i| {
            let idx = base + i;
            let open =
                self.table.state[idx] == SlotState::Open && t.time >= self.table.open_time[idx];
            let closed = self.last_closed[idx].is_some_and(|(k, _)| {
                k.open_time <= t.time
                    && t.time <= k.close_time
                    && k.close_time >= horizon
                    && !k.is_flat()
            });
            (open && t.time < self.table.next[idx]) || (!open && closed)
        });
        if !fits {
            return false;
        }
        for i in 0..self.n {
            let idx = base + i;
            if self.table.state[idx] == SlotState::Open && t.time >= self.table.open_time[idx] {
                self.table.apply(idx, t);
                continue;
            }
            let Some((mut k, revision)) = self.last_closed[idx] else { continue };
            k.apply(t, self.cfg.quote_rule);
            if self.table.state[idx] == SlotState::Flat {
                self.table.close[idx] = k.close; // quiet periods after it carry its close
            }
            let (gap, _) = self.marks(sym, i, k.open_time, k.close_time + 1);
            self.last_closed[idx] = Some((k, revision + 1));
            let symbol = self.symbols[sym].name.clone();
            self.emit(
                shared,
                Record::Kline { symbol, interval: i as u16, kline: k, revision: revision + 1, gap },
            );
        }
        true
    }

    /// The trade belongs to a later bucket than the slot's: close what is there, open anew.
    #[cold]
    fn roll(&mut self, shared: &Shared, sym: usize, i: usize, t: &Trade) {
        let idx = sym * self.n + i;
        let grid = self.grid(sym, i);
        let start = grid.bucket_start(t.time);
        let next = grid.next_start(start);
        match self.table.state[idx] {
            SlotState::Open => {
                let kline = self.table.kline(idx);
                self.emit_kline(shared, sym, i, kline);
                self.emit_quiet(shared, sym, i, kline.close_time + 1, start, kline.close);
            }
            SlotState::Flat => {
                let (since, price) = (self.table.open_time[idx], self.table.close[idx]);
                self.emit_quiet(shared, sym, i, since, start, price);
            }
            SlotState::Empty => {}
        }
        self.table.open_with(idx, t, start, next);
        if !self.swept.is_empty() {
            self.swept[idx] = None;
        }
        let s = &mut self.symbols[sym];
        s.late_before = s.late_before.max(start);
    }

    /// Closes what the clock has passed: open klines whose `close_time + grace` is behind
    /// `now`, and complete quiet periods (one flat run per slot, whatever their number).
    pub fn sweep(&mut self, shared: &Shared, now: i64) {
        let horizon = now - self.cfg.grace;
        // One linear scan: a slot needs work only once the clock passes its `next` boundary
        // (open: its close; flat: the end of its first unemitted quiet period).
        for idx in 0..self.table.len() {
            if self.table.state[idx] != SlotState::Empty
                && self.table.next[idx] <= horizon
                && !self.held(idx / self.n)
            {
                self.sweep_slot(shared, idx / self.n, idx % self.n, horizon);
            }
        }
    }

    /// `grids[i].bucket_start(horizon)`, computed once per horizon for all symbols (a sweep
    /// asks it for every due slot).
    fn bucket_end(&mut self, i: usize, horizon: i64) -> i64 {
        if self.ends_at != Some(horizon) {
            self.ends = self.cfg.grids.iter().map(|g| g.bucket_start(horizon)).collect();
            self.ends_at = Some(horizon);
        }
        self.ends[i]
    }

    fn held(&self, sym: usize) -> bool {
        self.symbols[sym].gap.as_ref().is_some_and(|g| g.held)
    }

    fn sweep_symbol(&mut self, shared: &Shared, sym: usize, horizon: i64) {
        for i in 0..self.n {
            self.sweep_slot(shared, sym, i, horizon);
        }
    }

    fn sweep_slot(&mut self, shared: &Shared, sym: usize, i: usize, horizon: i64) {
        let idx = sym * self.n + i;
        match self.table.state[idx] {
            SlotState::Open if self.table.next[idx] <= horizon => {
                let kline = self.table.kline(idx);
                self.emit_kline(shared, sym, i, kline);
                self.table.go_flat(idx, kline.close_time + 1);
                if let Some(swept) = self.swept.get_mut(idx) {
                    match swept {
                        Some(k) => **k = kline,
                        None => *swept = Some(Box::new(kline)), // 8 bytes per slot until used
                    }
                }
                let s = &mut self.symbols[sym];
                s.late_before = s.late_before.max(kline.close_time + 1);
                self.flat_until(shared, sym, i, horizon);
            }
            SlotState::Flat => self.flat_until(shared, sym, i, horizon),
            _ => {}
        }
    }

    /// Emits the complete quiet periods of a flat slot up to `horizon` as one run, and moves
    /// its `next` to the end of the first period still to come.
    fn flat_until(&mut self, shared: &Shared, sym: usize, i: usize, horizon: i64) {
        let idx = sym * self.n + i;
        let grid = self.grid(sym, i);
        let since = self.table.open_time[idx];
        let end = if grid.interval == Interval::ThreeDay {
            grid.bucket_start(horizon) // the grid is the symbol's own
        } else {
            self.bucket_end(i, horizon)
        };
        let halted = self.halted_before(sym, i, end);
        let end = halted.map_or(end, |from| from.max(since));
        if end > since {
            self.emit_quiet(shared, sym, i, since, end, self.table.close[idx]);
            self.table.open_time[idx] = end;
            let s = &mut self.symbols[sym];
            s.late_before = s.late_before.max(end);
        }
        self.table.next[idx] = match halted {
            Some(_) => i64::MAX, // nothing more until trading resumes
            None => grid.next_start(self.table.open_time[idx]),
        };
    }

    /// The feed of the symbol is down since `since`: what closes from now on is marked gap,
    /// and live trades wait for the backfill (see [`Gap`]). With `hold`, nothing of the symbol
    /// closes at all until `feed_up` (a catch-up expected to be short: history, a restart).
    pub fn feed_down(&mut self, sym: usize, since: i64, hold: bool) {
        let n = self.n;
        if !self.symbols[sym].live {
            return;
        }
        if self.symbols[sym].last_id == i64::MIN {
            let s = &mut self.symbols[sym];
            s.complete_from = s.complete_from.min(since);
        }
        if let Some(g) = self.symbols[sym].gap.as_mut() {
            g.since = g.since.min(since);
            return;
        }
        // Rewind point: the state right after the last trade. A kline the clock closed since
        // then (it may lack trades the gap hid) is reopened; what was emitted from it on is
        // owed a revision.
        let mut saved = Vec::with_capacity(n);
        let mut emitted_until = vec![i64::MIN; n];
        for (i, owed) in emitted_until.iter_mut().enumerate() {
            let idx = sym * n + i;
            let value = self.table.value(idx);
            match (value, self.swept.get(idx).and_then(|k| k.as_deref().copied())) {
                (SlotValue::Flat { since: quiet_from, .. }, Some(k)) if since <= k.close_time => {
                    saved.push(SlotValue::Open { kline: k, next: k.close_time + 1 });
                    *owed = quiet_from;
                }
                _ => saved.push(value),
            }
        }
        let late_before = saved.iter().map(SlotValue::start).max().unwrap_or(i64::MIN);
        let s = &mut self.symbols[sym];
        s.gap = Some(Box::new(Gap {
            since,
            saved,
            saved_last_id: s.last_id,
            saved_late_before: late_before,
            pending: Vec::new(),
            emitted_until,
            held: hold,
        }));
    }

    /// Holds trades of a symbol whose feed is down; false (counted) when over the bound.
    fn hold(&mut self, sym: usize, t: &Trade) -> bool {
        let Some(g) = self.symbols[sym].gap.as_mut() else { return false };
        if g.pending.len() >= MAX_GAP_PENDING {
            self.tally.gap_overflow += 1;
        } else {
            g.pending.push(*t);
        }
        true
    }

    /// Backfill trades (any order, duplicates allowed) for a symbol whose feed is down.
    /// Returns false if the symbol is not in a gap (nothing to fill).
    pub fn backfill(&mut self, sym: usize, trades: &[Trade]) -> bool {
        if self.symbols[sym].gap.is_none() {
            return false;
        }
        for t in trades {
            self.hold(sym, t);
        }
        true
    }

    /// The feed is back: rewind the symbol to where it was when the feed went down, apply the
    /// backfill and the held live trades in id order, and close what the clock has passed.
    /// Klines emitted as gap meanwhile come again as revision 1, exact unless ids are missing.
    pub fn feed_up(&mut self, shared: &Shared, sym: usize, now: i64, holes: Holes) {
        let Some(gap) = self.symbols[sym].gap.take() else { return };
        let Gap {
            since,
            saved,
            saved_last_id,
            saved_late_before,
            mut pending,
            emitted_until,
            held,
        } = *gap;
        for (i, value) in saved.iter().enumerate() {
            self.table.restore(sym * self.n + i, value);
        }
        let s = &mut self.symbols[sym];
        s.last_id = saved_last_id;
        s.late_before = saved_late_before;
        s.revise_before = Some(emitted_until.clone());
        s.holes.clear();
        pending.sort_by_key(|t| t.id);
        pending.dedup_by_key(|t| t.id);
        if let Holes::AcceptBelow(from_id) = holes {
            let before = pending.len();
            pending.retain(|t| t.id < from_id);
            self.tally.implausible_id += (before - pending.len()) as u64;
        }
        let accept_holes = holes != Holes::Ask;
        let s = &mut self.symbols[sym];
        let (slot, generation) = (sym as u32, s.generation);
        let mut prev: Option<Trade> = None;
        let mut regap = None;
        self.replaying = true;
        for (k, t) in pending.iter().enumerate() {
            let last = self.symbols[sym].last_id;
            if t.id > last.saturating_add(1) && last != i64::MIN {
                let from = prev.map_or(since, |p| p.time);
                self.tally.id_gaps += 1;
                if !accept_holes {
                    regap = Some((k, from, last));
                    break;
                }
                self.symbols[sym].holes.push((from, t.time));
            }
            self.trade(shared, slot, generation, t, now);
            if self.symbols[sym].last_id == t.id {
                prev = Some(*t);
            }
        }
        self.replaying = false;
        if let Some((k, from, last)) = regap {
            // Another hole further on: down again from here, with what is left, and ask for it.
            // Periods emitted as gap before are still owed a revision.
            self.symbols[sym].revise_before = None;
            self.feed_down(sym, from, held);
            if let Some(g) = self.symbols[sym].gap.as_mut() {
                g.pending.extend_from_slice(&pending[k..]);
                for (mine, old) in g.emitted_until.iter_mut().zip(&emitted_until) {
                    *mine = (*mine).max(*old);
                }
            }
            let to_id = pending.last().map_or(pending[k].id, |t| t.id) - 1;
            // Ask for everything up to the last trade held: later holes come in the same fetch.
            let hole = IdGap {
                symbol: self.symbols[sym].name.clone(),
                from_id: last + 1,
                to_id,
                since: from,
            };
            self.report_gap(shared, sym, hole);
            return;
        }
        self.sweep_symbol(shared, sym, now - self.cfg.grace);
        self.symbols[sym].revise_before = None;
    }

    /// Copies out the slots and checkpoints changed since the last acknowledged snapshot.
    pub fn snapshot(&mut self, partition: usize, seq: u64) -> PartitionSnapshot {
        let taken = self.table.dirty.take(seq).to_vec();
        let slots = taken
            .iter()
            .map(|&idx| {
                let idx = idx as usize;
                let (sym, i) = (idx / self.n, idx % self.n);
                SlotSnapshot {
                    symbol: self.symbols[sym].name.clone(),
                    interval: i as u16,
                    value: self.table.value(idx),
                }
            })
            .collect();
        let taken = self.checkpoints.take(seq).to_vec();
        let checkpoints = taken
            .iter()
            .map(|&sym| {
                let s = &self.symbols[sym as usize];
                Checkpoint { symbol: s.name.clone(), last_id: s.last_id }
            })
            .collect();
        // Closed records still waiting for room in the outbox: a consumer that drains the
        // outbox now has not seen everything these checkpoints include.
        PartitionSnapshot { partition, seq, slots, checkpoints }
    }

    pub fn ack_snapshot(&mut self, seq: u64) -> bool {
        let a = self.table.dirty.ack(seq);
        let b = self.checkpoints.ack(seq);
        a || b
    }

    /// Puts slots and checkpoints of live symbols back; returns how many were applied. With
    /// `hold`, each restored symbol waits (its trades held, its klines not closed by the
    /// clock) for the trades after its checkpoint: `backfill`, then `feed_up`.
    pub fn restore(
        &mut self,
        slots: &[(u32, u32, u16, SlotValue)],
        checkpoints: &[(u32, u32, i64)],
        hold: bool,
    ) -> usize {
        let mut applied = 0;
        for &(slot, generation, interval, value) in slots {
            let sym = slot as usize;
            if self.is_live(sym, generation) && (interval as usize) < self.n {
                self.table.restore(sym * self.n + interval as usize, &value);
                let start = value.start();
                let s = &mut self.symbols[sym];
                s.late_before = s.late_before.max(start);
                applied += 1;
            }
        }
        for &(slot, generation, last_id) in checkpoints {
            let sym = slot as usize;
            if self.is_live(sym, generation) {
                self.symbols[sym].last_id = last_id;
                self.checkpoints.mark(sym);
                applied += 1;
            }
        }
        if hold {
            let touched =
                slots.iter().map(|s| (s.0, s.1)).chain(checkpoints.iter().map(|c| (c.0, c.1)));
            for (slot, generation) in touched {
                let sym = slot as usize;
                if self.is_live(sym, generation) && self.symbols[sym].gap.is_none() {
                    self.feed_down(sym, self.symbols[sym].late_before, true);
                }
            }
        }
        applied
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

    /// After a panic while applying a trade of `slot`: its state may be half-updated, so it
    /// goes back to the last acknowledged snapshot. Returns the checkpoint it resumes from.
    pub fn recover_symbol(&mut self, durable: &Durable, slot: u32) -> Option<(Arc<str>, i64)> {
        let sym = slot as usize;
        let s = self.symbols.get(sym).filter(|s| s.live)?;
        let name = s.name.clone();
        let (values, last_id) = durable.get(&name);
        for (i, value) in values.iter().enumerate() {
            self.table.restore(sym * self.n + i, value);
        }
        let late_before = (0..self.n)
            .map(|i| self.table.value(sym * self.n + i).start())
            .max()
            .unwrap_or(i64::MIN);
        let s = &mut self.symbols[sym];
        s.last_id = last_id;
        s.late_before = late_before;
        self.checkpoints.mark(sym);
        Some((name, last_id))
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
