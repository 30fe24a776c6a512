//! One symbol's trades → klines of several intervals at once, in aggTrade id order.

use crate::decimal::QuoteRule;
use crate::interval::Grid;
use crate::kline::{FlatRun, Kline};
use crate::plausible::{Implausible, TimeLimits};
use crate::trade::{Skip, Trade};
use thiserror::Error;

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
        Aggregator {
            grids,
            slots,
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
        self.counts.inexact +=
            u64::from(self.quote_rule.of_aggtrade(t.price, t.qty, t.raw_trades()).1);
        for (i, slot) in self.slots.iter_mut().enumerate() {
            match slot {
                Some(s) if t.time < s.next => s.kline.apply(t, self.quote_rule),
                _ => {
                    let grid = &self.grids[i];
                    let start = grid.bucket_start(t.time);
                    let next = grid.next_start(start);
                    if let Some(s) = slot.take() {
                        out.kline(i, &s.kline);
                        if s.next < start {
                            out.flat_run(
                                i,
                                &FlatRun { start: s.next, end: start, price: s.kline.close },
                            );
                        }
                    }
                    *slot = Some(Slot {
                        next,
                        kline: Kline::open_with(t, start, next - 1, self.quote_rule),
                    });
                    self.late_before = self.late_before.max(start);
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

    /// The open klines (not yet final), one per interval that has seen a trade.
    pub fn open_klines(&self) -> impl Iterator<Item = (usize, &Kline)> {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.as_ref().map(|s| (i, &s.kline)))
    }

    /// Closes every open kline as if the stream ended (replay end of input).
    pub fn finish(&mut self, out: &mut impl KlineSink) {
        if let Some(s) = self.suspect.take() {
            self.refuse(&s, Skip::Implausible(Implausible::Jump));
        }
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if let Some(s) = slot.take() {
                out.kline(i, &s.kline);
            }
        }
        self.late_before = i64::MIN;
    }
}

/// The most periods one flat run is expanded into where klines leave one per period (a year
/// of 1s klines is 31.5 M). Past it the expansion stops with [`FlatRunTooLong`]: a silence
/// that long is almost always a bad trade time, and writing it out would fill the disk.
pub const MAX_FLAT_PERIODS: i64 = 1 << 25;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "a quiet stretch of {periods} {interval} periods from {start} to {end} is more than the bound \
     of {MAX_FLAT_PERIODS} flat klines per run (a bad trade time? otherwise keep such runs whole)"
)]
pub struct FlatRunTooLong {
    pub interval: String,
    pub start: i64,
    pub end: i64,
    pub periods: i64,
}

/// A sink that keeps everything with flat runs expanded: for tests and small in-memory jobs.
#[derive(Debug, Clone)]
pub struct Collect {
    grids: Vec<Grid>,
    pub klines: Vec<Vec<Kline>>,
    /// The first run too long to expand (what follows it is still collected).
    pub error: Option<FlatRunTooLong>,
}

impl Collect {
    pub fn new(grids: &[Grid]) -> Self {
        Collect { grids: grids.to_vec(), klines: vec![Vec::new(); grids.len()], error: None }
    }
}

impl KlineSink for Collect {
    fn kline(&mut self, interval: usize, kline: &Kline) {
        self.klines[interval].push(*kline);
    }

    fn flat_run(&mut self, interval: usize, run: &FlatRun) {
        let grid = self.grids[interval];
        if let Err(e) = expand_flat_run(&grid, run, |k| self.klines[interval].push(k)) {
            self.error.get_or_insert(e);
        }
    }
}

/// Calls `f` with each flat kline of a run, in time order; refuses (calling `f` for none) a
/// run longer than [`MAX_FLAT_PERIODS`].
pub fn expand_flat_run(
    grid: &Grid,
    run: &FlatRun,
    mut f: impl FnMut(Kline),
) -> Result<(), FlatRunTooLong> {
    let periods = grid.periods_between(run.start, run.end);
    if periods > MAX_FLAT_PERIODS {
        return Err(FlatRunTooLong {
            interval: grid.interval.to_string(),
            start: run.start,
            end: run.end,
            periods,
        });
    }
    let mut start = run.start;
    while start < run.end {
        let next = grid.next_start(start);
        f(Kline::flat(start, next - 1, run.price));
        start = next;
    }
    Ok(())
}

/// A run cut after its first `n ≥ 1` periods: the head, and the rest if any.
pub fn split_run(grid: &Grid, run: &FlatRun, n: i64) -> (FlatRun, Option<FlatRun>) {
    match grid.advance(run.start, n.max(1)).filter(|&cut| cut < run.end) {
        Some(cut) => (FlatRun { end: cut, ..*run }, Some(FlatRun { start: cut, ..*run })),
        None => (*run, None),
    }
}

/// The periods of a run that open in `[lo, hi)`, if any: a reader asking for one minute of a
/// year-long run gets that minute without the year being walked.
pub fn clip_run(grid: &Grid, run: &FlatRun, lo: i64, hi: i64) -> Option<FlatRun> {
    // The first period opening at or after `t`, as an index from the run's start (which is on
    // the symbol's own grid: its 3d anchor may differ from `grid`'s).
    let index = |t: i64| -> i64 {
        if t <= run.start {
            return 0;
        }
        match grid.period_len() {
            Some(len) => (t - run.start + len - 1).div_euclid(len),
            None => {
                let t = t.min(run.end);
                let b = grid.bucket_start(t);
                grid.periods_between(run.start, b) + i64::from(b < t)
            }
        }
    };
    let total = grid.periods_between(run.start, run.end);
    let (a, b) = (index(lo).min(total), index(hi).min(total));
    if a >= b {
        return None;
    }
    let start = grid.advance(run.start, a)?;
    let end = grid.advance(run.start, b)?;
    Some(FlatRun { start, end, price: run.price })
}

/// `(open, close)` of the periods of a run that open in `[lo, hi)`, only the latest `last`
/// of them if given: filtered before anything is expanded, refused past [`MAX_FLAT_PERIODS`].
pub fn flat_periods(
    grid: &Grid,
    run: &FlatRun,
    lo: i64,
    hi: i64,
    last: Option<i64>,
) -> Result<Vec<(i64, i64)>, FlatRunTooLong> {
    let Some(mut run) = clip_run(grid, run, lo, hi) else { return Ok(Vec::new()) };
    if let Some(k) = last {
        let skip = grid.periods_between(run.start, run.end) - k.max(0);
        if skip > 0 {
            run.start = grid.advance(run.start, skip).unwrap_or(run.end);
        }
    }
    let mut out = Vec::new();
    expand_flat_run(grid, &run, |k| out.push((k.open_time, k.close_time)))?;
    Ok(out)
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
mod tests {
    use super::*;
    use crate::interval::{Interval, TimeUnit, MINUTE_MS};
    use crate::rollup::rollup;
    use proptest::prelude::*;

    const T0: i64 = 1_577_836_800_000; // 2020-01-01 00:00 UTC

    fn grids(names: &[&str], unit: TimeUnit) -> Vec<Grid> {
        names.iter().map(|n| Grid::utc(n.parse::<Interval>().unwrap(), unit)).collect()
    }

    fn trade(id: i64, time: i64, price: i64, qty: i64) -> Trade {
        Trade {
            id,
            price,
            qty,
            first_id: id * 2,
            last_id: id * 2 + 1,
            time,
            buyer_is_maker: id % 3 == 0,
        }
    }

    #[test]
    fn a_trade_exactly_on_the_boundary_opens_the_next_minute() {
        let g = grids(&["1m"], TimeUnit::Millis);
        let trades = [trade(1, T0 + MINUTE_MS - 1, 100, 1), trade(2, T0 + MINUTE_MS, 200, 1)];
        let (k, _) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
        assert_eq!(k[0].len(), 2);
        assert_eq!((k[0][0].close, k[0][1].open, k[0][1].open_time), (100, 200, T0 + MINUTE_MS));
    }

    #[test]
    fn same_millisecond_trades_across_a_boundary_keep_id_order() {
        let g = grids(&["1m"], TimeUnit::Millis);
        let b = T0 + MINUTE_MS;
        let trades =
            [trade(1, b - 1, 10, 1), trade(2, b, 20, 1), trade(3, b, 30, 1), trade(4, b, 25, 1)];
        let (k, _) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
        assert_eq!((k[0][1].open, k[0][1].high, k[0][1].low, k[0][1].close), (20, 30, 20, 25));
        assert_eq!(k[0][1].trades, 6);
        assert_eq!((k[0][1].first_trade_id, k[0][1].last_trade_id), (4, 9));
    }

    #[test]
    fn empty_periods_are_flat_at_the_previous_close_in_one_run() {
        struct Runs(Vec<FlatRun>);
        impl KlineSink for Runs {
            fn kline(&mut self, _: usize, _: &Kline) {}
            fn flat_run(&mut self, _: usize, run: &FlatRun) {
                self.0.push(*run);
            }
        }
        let g = grids(&["1m"], TimeUnit::Millis);
        let mut agg = Aggregator::new(g.clone());
        let mut runs = Runs(Vec::new());
        let days = 400 * 24 * 60 * MINUTE_MS;
        agg.push(&trade(1, T0 + 5, 100, 1), &mut runs).unwrap();
        agg.push(&trade(2, T0 + days, 90, 1), &mut runs).unwrap();
        assert_eq!(runs.0, vec![FlatRun { start: T0 + MINUTE_MS, end: T0 + days, price: 100 }]);
        // The next minute straight after: no silence, no run (not even an empty one).
        agg.push(&trade(3, T0 + days + MINUTE_MS, 95, 1), &mut runs).unwrap();
        assert_eq!(runs.0.len(), 1);

        let (k, _) = aggregate(
            &g,
            &[trade(1, T0 + 5, 100, 1), trade(2, T0 + 3 * MINUTE_MS, 90, 1)],
            QuoteRule::PerTrade,
        )
        .unwrap();
        assert_eq!(k[0].len(), 4);
        assert_eq!(k[0][1], Kline::flat(T0 + MINUTE_MS, T0 + 2 * MINUTE_MS - 1, 100));
        assert_eq!(k[0][2].first_trade_id, -1);
    }

    #[test]
    fn an_edge_period_is_partial_only_where_the_input_does_not_cover_it() {
        let g = grids(&["1m"], TimeUnit::Millis)[0];
        let day = (T0, T0 + 1440 * MINUTE_MS);
        // A whole day covered: its first and last minutes are whole.
        assert!(partial_edges(&g, T0, T0 + 1439 * MINUTE_MS, day).is_empty());
        // Input from 00:00:30 to 00:09:59.999: both edge minutes are cut.
        let cut = (T0 + 30_000, T0 + 10 * MINUTE_MS - 1);
        assert_eq!(partial_edges(&g, T0, T0 + 9 * MINUTE_MS, cut), [T0, T0 + 9 * MINUTE_MS]);
        // One period, cut at both ends, is named once.
        assert_eq!(partial_edges(&g, T0, T0, (T0 + 1, T0 + 2)), [T0]);
        // Ends exactly at the last period's end: only the start is cut.
        let end = (T0 + 1, T0 + 10 * MINUTE_MS);
        assert_eq!(partial_edges(&g, T0, T0 + 9 * MINUTE_MS, end), [T0]);
    }

    #[test]
    fn a_single_period_reaching_past_the_input_is_partial_and_one_within_it_is_not() {
        let day = grids(&["1d"], TimeUnit::Millis)[0];
        const HOUR: i64 = 60 * MINUTE_MS;
        // One hour of input inside a day: the day is partial; the whole day covered: it is not.
        assert_eq!(partial_edges(&day, T0, T0, (T0, T0 + HOUR)), [T0]);
        assert!(partial_edges(&day, T0, T0, (T0, T0 + 24 * HOUR)).is_empty());
    }

    #[test]
    fn partial_periods_and_the_span_come_from_what_was_aggregated() {
        let g = grids(&["1m", "1h"], TimeUnit::Millis);
        let trades = [trade(1, T0 + 30_000, 100, 1), trade(2, T0 + 150_000, 101, 1)];
        let mut agg = Aggregator::new(g.clone());
        let mut out = Collect::new(&g);
        for t in &trades {
            agg.push(t, &mut out).unwrap();
        }
        assert_eq!(agg.span(), Some((T0 + 30_000, T0 + 150_000)));
        agg.finish(&mut out);
        let covered = (T0 + 30_000, T0 + 150_001);
        let want: Vec<Vec<i64>> = vec![vec![T0, T0 + 2 * MINUTE_MS], vec![T0]];
        assert_eq!(partial_periods(&g, &out.klines, covered), want);
        let hour = (T0, T0 + 60 * MINUTE_MS);
        assert_eq!(partial_periods(&g, &out.klines, hour), vec![Vec::<i64>::new(), vec![]]);
        assert_eq!(Aggregator::new(g.clone()).span(), None);
    }

    #[test]
    fn duplicates_placeholders_invalid_and_late_are_counted_not_applied() {
        let g = grids(&["1m", "5m"], TimeUnit::Millis);
        let placeholder = Trade {
            id: 4,
            price: 0,
            qty: 0,
            first_id: -1,
            last_id: -1,
            time: T0,
            buyer_is_maker: false,
        };
        let trades = [
            trade(1, T0 + 10, 100, 1),
            trade(2, T0 + MINUTE_MS, 101, 1),
            trade(2, T0 + MINUTE_MS, 101, 1),
            trade(1, T0 + 10, 100, 1),
            trade(3, T0 + 20, 100, 1), // late: minute 0 has closed
            placeholder,
            Trade { price: -5, ..trade(5, T0 + MINUTE_MS, 1, 1) },
            trade(6, T0 + MINUTE_MS + 1, 102, 1),
        ];
        let (k, counts) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
        assert_eq!(
            counts,
            Counts {
                applied: 3,
                duplicates: 2,
                placeholders: 1,
                invalid: 1,
                late: 1,
                // Two raw trades each, p·q at 1e-14: each may differ from Binance's.
                inexact: 3,
                ..Counts::default()
            }
        );
        assert_eq!(k[0][1].close, 102);
        assert_eq!(k[1][0].trades, 6);
    }

    #[test]
    fn microsecond_input_keeps_microseconds() {
        let g = grids(&["1m"], TimeUnit::Micros);
        let (k, _) = aggregate(
            &g,
            &[trade(1, T0 * 1000 + 59_999_999, 7, 1), trade(2, T0 * 1000 + 60_000_000, 8, 1)],
            QuoteRule::PerTrade,
        )
        .unwrap();
        assert_eq!(k[0][0].close_time, T0 * 1000 + 59_999_999);
        assert_eq!(k[0][1].open_time, T0 * 1000 + 60_000_000);
    }

    #[test]
    fn tiny_prices_and_volumes_past_1e13_stay_exact() {
        let g = grids(&["1d"], TimeUnit::Millis);
        let qty = 90_000_000_000 * crate::decimal::SCALE; // 9e10 coins per trade
        let trades: Vec<Trade> = (1..=1000).map(|i| trade(i, T0 + i, 1, qty)).collect();
        let (k, _) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
        let k = k[0][0];
        assert_eq!(crate::decimal::format_fixed8(k.volume), "90000000000000.00000000");
        assert_eq!(k.quote_volume, 1000 * i128::from(qty));
        assert_eq!(
            crate::decimal::format_fixed8(crate::decimal::quote_to_fixed8(k.quote_volume)),
            "900000.00000000"
        );
    }

    #[test]
    fn counts_add_field_by_field() {
        let one = Counts {
            applied: 1,
            duplicates: 2,
            placeholders: 3,
            invalid: 4,
            late: 5,
            implausible_unit: 6,
            implausible_jump: 7,
            implausible_id: 8,
            inexact: 9,
        };
        let ten = Counts {
            applied: 10,
            duplicates: 20,
            placeholders: 30,
            invalid: 40,
            late: 50,
            implausible_unit: 60,
            implausible_jump: 70,
            implausible_id: 80,
            inexact: 90,
        };
        let mut sum = one;
        sum.add(&ten);
        assert_eq!(
            sum,
            Counts {
                applied: 11,
                duplicates: 22,
                placeholders: 33,
                invalid: 44,
                late: 55,
                implausible_unit: 66,
                implausible_jump: 77,
                implausible_id: 88,
                inexact: 99,
            }
        );
        assert_eq!(sum.implausible(), 66 + 77 + 88);
    }

    #[test]
    fn the_checkpoint_and_the_open_klines_follow_what_was_applied() {
        let g = grids(&["1m", "5m"], TimeUnit::Millis);
        let mut agg = Aggregator::new(g.clone());
        let mut out = Collect::new(&g);
        assert_eq!((agg.last_id(), agg.open_klines().count()), (None, 0));
        assert_eq!(agg.grids(), &g[..]);
        agg.push(&trade(5, T0 + 10, 100, 1), &mut out).unwrap();
        agg.push(&trade(6, T0 + MINUTE_MS, 101, 1), &mut out).unwrap();
        assert!(agg.push(&trade(4, T0 + MINUTE_MS, 102, 1), &mut out).is_err()); // duplicate
        assert!(agg.push(&trade(7, -1, 102, 1), &mut out).is_err()); // invalid time
        assert_eq!(agg.last_id(), Some(6));
        let open: Vec<(usize, i64, i64)> =
            agg.open_klines().map(|(i, k)| (i, k.open_time, k.close)).collect();
        assert_eq!(open, vec![(0, T0 + MINUTE_MS, 101), (1, T0, 101)]);
        agg.finish(&mut out);
        assert_eq!(agg.open_klines().count(), 0);
        assert_eq!(agg.last_id(), Some(6));
    }

    #[test]
    fn a_held_jump_is_confirmed_only_by_a_later_id_at_or_after_its_time_within_the_bound() {
        const DAY: i64 = 86_400_000;
        let g = grids(&["1d"], TimeUnit::Millis);
        let limits = TimeLimits::from_ms(TimeUnit::Millis, None, Some(DAY));
        let held = trade(2, T0 + 10 * DAY, 100, 1);
        // (the trade after the held one; trades applied, jumps refused, after `finish`)
        let cases = [
            (trade(3, held.time, 100, 1), (3, 0)), // a halt: the next trade follows it
            (trade(2, held.time + 5, 100, 1), (1, 2)), // the same id again
            (trade(3, held.time - DAY, 100, 1), (1, 2)), // a later id, earlier than it
            (trade(3, held.time + 2 * DAY, 100, 1), (1, 2)), // too far after it too
        ];
        for (next, (applied, jumps)) in cases {
            let mut agg = Aggregator::with_limits(g.clone(), limits);
            let mut out = Collect::new(&g);
            for t in [trade(1, T0, 100, 1), held, next] {
                let _ = agg.push(&t, &mut out);
            }
            agg.finish(&mut out);
            let c = agg.counts;
            assert_eq!((c.applied, c.implausible_jump), (applied, jumps), "{next:?}");
            let raw: u64 = out.klines[0].iter().map(|k| k.trades).sum();
            assert_eq!(raw, 2 * applied, "{next:?}");
        }
    }

    #[test]
    fn a_month_run_clipped_at_a_month_start_begins_there() {
        let m = Grid::utc(Interval::Month, TimeUnit::Millis);
        let year = FlatRun { start: T0, end: m.advance(T0, 12).unwrap(), price: 1 };
        let (mar, may) = (m.advance(T0, 2).unwrap(), m.advance(T0, 4).unwrap());
        let got = flat_periods(&m, &year, mar, may, None).unwrap();
        assert_eq!(
            got,
            vec![(mar, m.advance(T0, 3).unwrap() - 1), (m.advance(T0, 3).unwrap(), may - 1)]
        );
        assert_eq!(clip_run(&m, &year, may, may), None);
    }

    #[test]
    fn a_run_of_exactly_the_bound_is_expanded() {
        let g = Grid::utc(Interval::Fixed { ms: 1 }, TimeUnit::Millis);
        let run = FlatRun { start: T0, end: T0 + MAX_FLAT_PERIODS, price: 7 };
        let mut n = 0i64;
        assert_eq!(expand_flat_run(&g, &run, |_| n += 1), Ok(()));
        assert_eq!(n, MAX_FLAT_PERIODS);
        let longer = FlatRun { end: run.end + 1, ..run };
        assert!(expand_flat_run(&g, &longer, |_| n += 1).is_err());
        assert_eq!(n, MAX_FLAT_PERIODS, "a refused run calls f for none");
    }

    fn arb_trades() -> impl Strategy<Value = Vec<Trade>> {
        prop::collection::vec(
            (0i64..200_000, 1i64..1_000_000, 0i64..1_000_000, any::<bool>(), 1i64..4),
            1..300,
        )
        .prop_map(|rows| {
            let (mut time, mut raw) = (T0, 0);
            rows.into_iter()
                .enumerate()
                .map(|(i, (dt, price, qty, m, n))| {
                    time += dt * (dt % 7); // bursts, quiet stretches, shared ms
                    raw += n;
                    Trade {
                        id: i as i64 + 1,
                        price,
                        qty,
                        first_id: raw - n + 1,
                        last_id: raw,
                        time,
                        buyer_is_maker: m,
                    }
                })
                .collect()
        })
    }

    #[test]
    fn runs_are_cut_and_clipped_without_being_walked() {
        let g = Grid::utc(Interval::Fixed { ms: 1_000 }, TimeUnit::Millis);
        // 400 days of quiet seconds: one minute of it is read, the rest never expanded.
        let run = FlatRun { start: T0, end: T0 + 400 * 86_400_000, price: 7 };
        let minute = flat_periods(&g, &run, T0 + 1_500, T0 + 61_000, None).unwrap();
        assert_eq!(minute.len(), 59);
        assert_eq!(minute[0], (T0 + 2_000, T0 + 2_999));
        assert_eq!(flat_periods(&g, &run, T0, T0 + 10_000, Some(3)).unwrap().len(), 3);
        let tail = flat_periods(&g, &run, i64::MIN, i64::MAX, Some(2)).unwrap();
        assert_eq!(tail, vec![(run.end - 2_000, run.end - 1_001), (run.end - 1_000, run.end - 1)]);
        assert!(
            flat_periods(&g, &run, i64::MIN, i64::MAX, None).is_err(),
            "34.6 M: over the bound"
        );
        let (head, rest) = split_run(&g, &run, 10);
        assert_eq!((head.start, head.end), (T0, T0 + 10_000));
        assert_eq!(rest.map(|r| (r.start, r.end)), Some((T0 + 10_000, run.end)));
        assert_eq!(split_run(&g, &head, 10), (head, None));
        // Months: lengths differ, cuts still land on the 1st.
        let m = Grid::utc(Interval::Month, TimeUnit::Millis);
        let months = FlatRun { start: T0, end: m.advance(T0, 14).unwrap(), price: 1 };
        let got = flat_periods(&m, &months, T0 + 40 * 86_400_000, i64::MAX, Some(100)).unwrap();
        assert_eq!(got.len(), 12, "Mar 2020 .. Feb 2021");
        assert_eq!(got[0].0, m.advance(T0, 2).unwrap());
    }

    proptest! {
        #[test]
        fn any_split_of_the_input_gives_the_same_klines(trades in arb_trades(), cut in any::<prop::sample::Index>()) {
            let g = grids(&["1m", "5m", "1h"], TimeUnit::Millis);
            let (whole, _) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
            let cut = cut.index(trades.len() + 1);
            let mut agg = Aggregator::new(g.clone());
            let mut out = Collect::new(&g);
            for part in [&trades[..cut], &trades[cut..]] {
                for t in part {
                    let _ = agg.push(t, &mut out);
                }
            }
            agg.finish(&mut out);
            prop_assert_eq!(out.klines, whole);
        }

        #[test]
        fn rolled_up_1m_equals_direct_aggregation(trades in arb_trades()) {
            let names = ["1m", "5m", "15m", "1h", "1d", "1w", "1M"];
            let g = grids(&names, TimeUnit::Millis);
            let (direct, _) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
            for (i, coarse) in g.iter().enumerate().skip(1) {
                let rolled = rollup(&direct[0], coarse).unwrap();
                prop_assert_eq!(&rolled, &direct[i], "{}", names[i]);
            }
        }

        #[test]
        fn duplicates_change_nothing(trades in arb_trades(), dups in prop::collection::vec(any::<prop::sample::Index>(), 0..50)) {
            let g = grids(&["1m", "1h"], TimeUnit::Millis);
            let (clean, _) = aggregate(&g, &trades, QuoteRule::PerTrade).unwrap();
            let mut noisy = trades.clone();
            for d in &dups {
                let at = d.index(noisy.len());
                let back = d.index(at + 1);
                noisy.insert(at + 1, noisy[back]);
            }
            let (again, counts) = aggregate(&g, &noisy, QuoteRule::PerTrade).unwrap();
            prop_assert_eq!(again, clean);
            prop_assert_eq!(counts.duplicates, noisy.len() as u64 - trades.len() as u64);
        }
    }
}
