//! Flat runs: quiet stretches kept as one record, and where they are expanded into one flat
//! kline per period, cut or clipped, always within [`MAX_FLAT_PERIODS`].

use super::KlineSink;
use crate::interval::Grid;
use crate::kline::{FlatRun, Kline};
use thiserror::Error;

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
