//! One symbol's trades → klines of several intervals at once, in aggTrade id order.

use crate::decimal::QuoteRule;
use crate::interval::{Grid, Interval, TimeUnit};
use crate::kline::{FlatRun, Kline};
use crate::plausible::{Implausible, TimeLimits};
use crate::trade::{Skip, Trade};

mod flat;

pub use flat::{
    clip_run, expand_flat_run, flat_periods, split_run, Collect, FlatRunTooLong, MAX_FLAT_PERIODS,
};

/// Receives what an [`Aggregator`] closes, tagged with the interval's index.
pub trait KlineSink {
    fn kline(&mut self, interval: usize, kline: &Kline);
    /// Empty periods after a silence; called once per silence whatever its length.
    fn flat_run(&mut self, interval: usize, run: &FlatRun);
}

/// Counts of trades applied and skipped, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub applied: u64,
    pub duplicates: u64,
    pub placeholders: u64,
    pub invalid: u64,
    pub late: u64,
    /// Times outside the unit's range (µs in ms data, or the reverse).
    pub implausible_unit: u64,
    /// Times too far after the previous trade, not confirmed by the next one.
    pub implausible_jump: u64,
    /// aggTrade ids further ahead than the market could trade (see `crate::plausible`).
    pub implausible_id: u64,
    /// Applied aggTrades whose quote value may differ from Binance's (several raw trades, p·q
    /// past 8 decimals: see `QuoteRule::of_aggtrade`).
    pub inexact: u64,
}

impl Counts {
    pub fn add(&mut self, other: &Counts) {
        self.applied += other.applied;
        self.duplicates += other.duplicates;
        self.placeholders += other.placeholders;
        self.invalid += other.invalid;
        self.late += other.late;
        self.implausible_unit += other.implausible_unit;
        self.implausible_jump += other.implausible_jump;
        self.implausible_id += other.implausible_id;
        self.inexact += other.inexact;
    }

    /// Trades refused for their time.
    pub fn implausible(&self) -> u64 {
        self.implausible_unit + self.implausible_jump + self.implausible_id
    }

    fn count(&mut self, skip: Skip) {
        match skip {
            Skip::Duplicate => self.duplicates += 1,
            Skip::Placeholder => self.placeholders += 1,
            Skip::Invalid(_) => self.invalid += 1,
            Skip::Late => self.late += 1,
            Skip::Implausible(Implausible::Jump) => self.implausible_jump += 1,
            Skip::Implausible(Implausible::IdJump) => self.implausible_id += 1,
            Skip::Implausible(_) => self.implausible_unit += 1,
        }
    }
}

/// Open kline of one interval plus what is needed to close it.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Open time of the next bucket: the first time this kline does not cover.
    next: i64,
    kline: Kline,
}

/// Builds one symbol's klines for a set of grids.
///
/// Invariants: trades are applied in strictly increasing id order (lower ids are counted as
/// duplicates); every open kline holds only trades of its bucket; a bucket closes when a
/// trade of a later bucket arrives, and any empty buckets in between leave as one [`FlatRun`];
/// no trade whose time fails [`TimeLimits`] is applied.
#[derive(Debug, Clone)]
pub struct Aggregator {
    grids: Vec<Grid>,
    slots: Vec<Option<Slot>>,
    /// The grids trades are applied to: each refined by none of the others.
    roots: Vec<usize>,
    /// Per grid, the grids rolled up from its closed klines (see [`Grid::refines`]): one
    /// update per trade whatever the number of intervals, and the same klines.
    rolled: Vec<Vec<usize>>,
    last_id: Option<i64>,
    /// Latest open time of any open kline: a trade before it belongs to a closed bucket.
    late_before: i64,
    limits: TimeLimits,
    /// Time of the latest applied trade: what a jump is measured from.
    last_time: Option<i64>,
    first_time: Option<i64>,
    /// A trade too far after the previous one, held until the next trade tells a real jump
    /// (a halt: the next trade follows it) from a bad time (the next trade does not).
    suspect: Option<Trade>,
    /// The latest trade refused for its time, and why: for a caller that stops on the first.
    pub refused: Option<(Trade, Implausible)>,
    pub counts: Counts,
    quote_rule: QuoteRule,
}

impl Aggregator {
    /// Times are held to their unit's range (the grids' unit) and no jump bound.
    pub fn new(grids: Vec<Grid>) -> Self {
        let unit = grids.first().map_or(crate::interval::TimeUnit::Millis, |g| g.unit);
        Self::with_limits(grids, TimeLimits::unit_only(unit))
    }

    pub fn with_limits(grids: Vec<Grid>, limits: TimeLimits) -> Self {
        let slots = vec![None; grids.len()];
        let (roots, rolled) = roll_up_plan(&grids);
        Aggregator {
            grids,
            slots,
            roots,
            rolled,
            last_id: None,
            late_before: i64::MIN,
            limits: TimeLimits { max_ahead: None, ..limits },
            last_time: None,
            first_time: None,
            suspect: None,
            refused: None,
            counts: Counts::default(),
            quote_rule: QuoteRule::default(),
        }
    }

    /// How trades add to quote volume (default: per trade truncated, as Binance spot).
    pub fn with_quote_rule(mut self, rule: QuoteRule) -> Self {
        self.quote_rule = rule;
        self
    }

    pub fn grids(&self) -> &[Grid] {
        &self.grids
    }

    /// Times of the first and the latest applied trade.
    pub fn span(&self) -> Option<(i64, i64)> {
        self.first_time.zip(self.last_time)
    }

    /// Last applied aggTrade id: the checkpoint.
    pub fn last_id(&self) -> Option<i64> {
        self.last_id
    }

    /// Applies one trade, or says why not (and counts it). A trade refused for a jump is
    /// counted once the next trade (or `finish`) shows the jump was not real.
    #[inline]
    pub fn push(&mut self, t: &Trade, out: &mut impl KlineSink) -> Result<(), Skip> {
        if let Some(skip) = self.check(t) {
            if skip == Skip::Implausible(Implausible::Jump) {
                return self.jump(t, out);
            }
            self.refuse(t, skip);
            return Err(skip);
        }
        if let Some(s) = self.suspect.take() {
            self.refuse(&s, Skip::Implausible(Implausible::Jump));
        }
        self.apply(t, out);
        Ok(())
    }

    fn refuse(&mut self, t: &Trade, skip: Skip) {
        self.counts.count(skip);
        if let Skip::Implausible(why) = skip {
            self.refused = Some((*t, why));
        }
    }

    /// `t` is too far after the previous trade: a real jump if it follows the trade held
    /// before it (both applied), otherwise held in its place.
    #[cold]
    fn jump(&mut self, t: &Trade, out: &mut impl KlineSink) -> Result<(), Skip> {
        let confirms = self.suspect.is_some_and(|s| {
            s.id < t.id && s.time <= t.time && self.limits.check(t.time, None, Some(s.time)).is_ok()
        });
        if confirms {
            let s = self.suspect.take().expect("checked");
            self.apply(&s, out);
            self.apply(t, out);
            return Ok(());
        }
        if let Some(s) = self.suspect.replace(*t) {
            self.refuse(&s, Skip::Implausible(Implausible::Jump));
        }
        Err(Skip::Implausible(Implausible::Jump))
    }

    #[inline]
    fn apply(&mut self, t: &Trade, out: &mut impl KlineSink) {
        self.last_id = Some(t.id);
        self.last_time = Some(self.last_time.map_or(t.time, |l| l.max(t.time)));
        self.first_time.get_or_insert(t.time);
        self.counts.applied += 1;
        let rule = self.quote_rule;
        let valued = rule.of_aggtrade(t.price, t.qty, t.raw_trades());
        self.counts.inexact += u64::from(valued.1);
        for r in 0..self.roots.len() {
            let i = self.roots[r];
            match &mut self.slots[i] {
                Some(s) if t.time < s.next => s.kline.apply_valued(t, valued),
                slot => {
                    let grid = &self.grids[i];
                    let start = grid.bucket_start(t.time);
                    let next = grid.next_start(start);
                    let opened = Slot { next, kline: Kline::open_with(t, start, next - 1, rule) };
                    if let Some(closed) = slot.replace(opened) {
                        self.close(i, &closed, start, out);
                    }
                    self.late_before = self.late_before.max(start);
                }
            }
        }
    }

    /// Hands out grid `i`'s closed kline (then the empty periods up to `start`, the next
    /// bucket's) and rolls it up into the grids it refines.
    fn close(&mut self, i: usize, closed: &Slot, start: i64, out: &mut impl KlineSink) {
        out.kline(i, &closed.kline);
        if closed.next < start {
            out.flat_run(i, &FlatRun { start: closed.next, end: start, price: closed.kline.close });
        }
        for d in 0..self.rolled[i].len() {
            let j = self.rolled[i][d];
            self.roll_up(j, &closed.kline, out);
        }
    }

    /// Adds a closed finer kline to grid `j`'s open one, or closes that and opens the bucket
    /// holding it.
    fn roll_up(&mut self, j: usize, finer: &Kline, out: &mut impl KlineSink) {
        match &mut self.slots[j] {
            Some(s) if finer.open_time < s.next => s.kline.absorb(finer),
            slot => {
                let opened = opened_by(&self.grids[j], finer);
                let start = opened.kline.open_time;
                if let Some(closed) = slot.replace(opened) {
                    self.close(j, &closed, start, out);
                }
            }
        }
    }

    #[inline]
    fn check(&self, t: &Trade) -> Option<Skip> {
        if self.last_id.is_some_and(|last| t.id <= last) {
            return Some(Skip::Duplicate);
        }
        if let Some(defect) = t.defect() {
            return Some(defect);
        }
        if let Err(why) = self.limits.check(t.time, None, self.last_time) {
            return Some(Skip::Implausible(why));
        }
        // Only a jump in ids needs the check (the next id is always plausible).
        if let (Some(last_id), Some(last_time)) = (self.last_id, self.last_time) {
            if t.id > last_id + 1 {
                if let Err(why) = self.limits.check_id(t.id, t.time, last_id, last_time) {
                    return Some(Skip::Implausible(why));
                }
            }
        }
        (t.time < self.late_before).then_some(Skip::Late)
    }

    /// The open klines (not yet final), one per interval that has seen a trade: a rolled-up
    /// grid's with the open finer kline in it.
    pub fn open_klines(&self) -> Vec<(usize, Kline)> {
        let mut open: Vec<Option<Slot>> = vec![None; self.slots.len()];
        for &r in &self.roots {
            self.open_into(r, self.slots[r].as_ref(), &mut open);
        }
        open.iter().enumerate().filter_map(|(i, s)| s.map(|s| (i, s.kline))).collect()
    }

    fn open_into(&self, i: usize, finer: Option<&Slot>, open: &mut [Option<Slot>]) {
        let mut slot = self.slots[i];
        if let (Some(finer), false) = (finer, self.roots.contains(&i)) {
            let k = &finer.kline;
            match &mut slot {
                Some(s) if k.open_time < s.next => s.kline.absorb(k),
                _ => slot = Some(opened_by(&self.grids[i], k)),
            }
        }
        open[i] = slot;
        for &j in &self.rolled[i] {
            self.open_into(j, slot.as_ref(), open);
        }
    }

    /// Closes every open kline as if the stream ended (replay end of input).
    pub fn finish(&mut self, out: &mut impl KlineSink) {
        if let Some(s) = self.suspect.take() {
            self.refuse(&s, Skip::Implausible(Implausible::Jump));
        }
        for r in 0..self.roots.len() {
            self.finish_grid(self.roots[r], out);
        }
        self.late_before = i64::MIN;
    }
}

impl Aggregator {
    /// Closes grid `i`'s open kline, rolls it up, then closes the grids rolled up from it.
    fn finish_grid(&mut self, i: usize, out: &mut impl KlineSink) {
        if let Some(s) = self.slots[i].take() {
            out.kline(i, &s.kline);
            for d in 0..self.rolled[i].len() {
                let j = self.rolled[i][d];
                self.roll_up(j, &s.kline, out);
            }
        }
        for d in 0..self.rolled[i].len() {
            self.finish_grid(self.rolled[i][d], out);
        }
    }
}

/// The slot of `grid` opened by a closed finer kline: the bucket holding it, flat at its close
/// (what a flat finer kline carries), then the kline added.
fn opened_by(grid: &Grid, finer: &Kline) -> Slot {
    let start = grid.bucket_start(finer.open_time);
    let next = grid.next_start(start);
    let mut kline = Kline::flat(start, next - 1, finer.close);
    kline.absorb(finer);
    Slot { next, kline }
}

/// Which grids take trades (the roots) and, per grid, which are rolled up from it: from the
/// finest up, a grid refined by a root rolls up from the coarsest such root (fewest klines to
/// add), otherwise it is a root itself.
fn roll_up_plan(grids: &[Grid]) -> (Vec<usize>, Vec<Vec<usize>>) {
    let mut order: Vec<usize> = (0..grids.len()).collect();
    order.sort_by_key(|&i| (grids[i].interval.nominal_ms(), i));
    let (mut roots, mut rolled): (Vec<usize>, _) = (Vec::new(), vec![Vec::new(); grids.len()]);
    for i in order {
        match roots.iter().rev().find(|&&r| grids[r].refines(&grids[i])) {
            Some(&r) => rolled[r].push(i),
            None => roots.push(i),
        }
    }
    (roots, rolled)
}

/// The open times, among the first (`first`) and last (`last`) periods of a series, of those
/// the input does not cover whole: `covered` is `[start, end)` (a dump's day, or from the first
/// trade to just after the last). Their klines are partial: trades before or after the input
/// may belong to them.
pub fn partial_edges(grid: &Grid, first: i64, last: i64, covered: (i64, i64)) -> Vec<i64> {
    let mut out = Vec::with_capacity(2);
    if first < covered.0 || grid.next_start(first) > covered.1 {
        out.push(first);
    }
    if last != first && grid.next_start(last) > covered.1 {
        out.push(last);
    }
    out
}

/// [`partial_edges`] of each interval's klines (as [`aggregate`] returns them).
pub fn partial_periods(
    grids: &[Grid],
    klines: &[Vec<Kline>],
    covered: (i64, i64),
) -> Vec<Vec<i64>> {
    grids
        .iter()
        .zip(klines)
        .map(|(grid, ks)| match (ks.first(), ks.last()) {
            (Some(f), Some(l)) => partial_edges(grid, f.open_time, l.open_time, covered),
            _ => Vec::new(),
        })
        .collect()
}

/// How [`aggregate_trades`] places its grids and sums quote volume.
#[derive(Debug, Clone)]
pub struct AggregateOptions {
    pub intervals: Vec<Interval>,
    /// The trades' time unit; `None`: detected from the first trade.
    pub unit: Option<TimeUnit>,
    pub tz_offset_ms: i64,
    /// The symbol's 3d anchor (its listing day); `None`: the epoch grid.
    pub anchor_3d_ms: Option<i64>,
    pub quote_rule: QuoteRule,
    /// The span `[start, end)` the trades are all of (a day's dump); `None`: from the first
    /// trade to just after the last.
    pub covers: Option<(i64, i64)>,
}

/// Klines per interval, what happened to the trades, and per interval the open times of the
/// edge periods the input does not cover whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aggregation {
    pub klines: Vec<Vec<Kline>>,
    pub counts: Counts,
    pub partial: Vec<Vec<i64>>,
}

/// [`aggregate`] with its grids placed from `opts`, and the partial edge periods named.
pub fn aggregate_trades(
    trades: &[Trade],
    opts: &AggregateOptions,
) -> Result<Aggregation, FlatRunTooLong> {
    let unit = opts
        .unit
        .unwrap_or_else(|| trades.first().map_or(TimeUnit::Millis, |t| TimeUnit::detect(t.time)));
    let grids: Vec<Grid> = opts
        .intervals
        .iter()
        .map(|&iv| Grid::new(iv, unit, opts.tz_offset_ms, opts.anchor_3d_ms.unwrap_or(0)))
        .collect();
    let (klines, counts) = aggregate(&grids, trades, opts.quote_rule)?;
    let times = trades.iter().map(|t| t.time);
    let covered =
        opts.covers.unwrap_or((times.clone().min().unwrap_or(0), times.max().unwrap_or(0) + 1));
    let partial = partial_periods(&grids, &klines, covered);
    Ok(Aggregation { klines, counts, partial })
}

/// Aggregates a whole slice of trades (in id order) and closes everything at the end; an
/// error if a flat run is too long to expand.
pub fn aggregate(
    grids: &[Grid],
    trades: &[Trade],
    quote_rule: QuoteRule,
) -> Result<(Vec<Vec<Kline>>, Counts), FlatRunTooLong> {
    let mut agg = Aggregator::new(grids.to_vec()).with_quote_rule(quote_rule);
    let mut out = Collect::new(grids);
    for t in trades {
        let _ = agg.push(t, &mut out);
    }
    agg.finish(&mut out);
    match out.error {
        Some(e) => Err(e),
        None => Ok((out.klines, agg.counts)),
    }
}

#[cfg(test)]
mod tests;
