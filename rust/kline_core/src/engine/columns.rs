//! The engine's records and slots laid out as columns, one row per kline: what bindings hand
//! over as arrays and take back on restore. The layout rules live here, not in a binding.

use super::output::Record;
use super::table::SlotValue;
use crate::aggregate::{expand_flat_run, FlatRunTooLong};
use crate::interval::Grid;
use crate::kline::Kline;
use std::sync::Arc;

/// Closed records as rows: a kline each, with whom and what it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordColumns {
    pub klines: Vec<Kline>,
    pub symbols: Vec<Arc<str>>,
    /// Interval index (into the engine's intervals).
    pub intervals: Vec<u16>,
    pub revisions: Vec<u32>,
    pub gaps: Vec<bool>,
    /// The row stands for a whole flat run `open_time ..= close_time` (only when not expanded).
    pub flat: Vec<bool>,
}

impl RecordColumns {
    /// `recs` as rows; with `expand`, a flat run becomes one flat kline per period (a poll
    /// bounds what it hands out, so this expansion is bounded too), else one row for the run.
    pub fn of(grids: &[Grid], recs: &[Record], expand: bool) -> Result<Self, FlatRunTooLong> {
        let mut c = RecordColumns::default();
        for r in recs {
            let before = c.klines.len();
            let (symbol, interval, revision, gap, is_run) = match r {
                Record::Kline { symbol, interval, kline, revision, gap } => {
                    c.klines.push(*kline);
                    (symbol, *interval, *revision, *gap, false)
                }
                Record::FlatRun { symbol, interval, run, revision, gap } if expand => {
                    expand_flat_run(&grids[*interval as usize], run, |k| c.klines.push(k))?;
                    (symbol, *interval, *revision, *gap, false)
                }
                Record::FlatRun { symbol, interval, run, revision, gap } => {
                    c.klines.push(Kline::flat(run.start, run.end - 1, run.price));
                    (symbol, *interval, *revision, *gap, true)
                }
            };
            for _ in before..c.klines.len() {
                c.symbols.push(symbol.clone());
                c.intervals.push(interval);
                c.revisions.push(revision);
                c.gaps.push(gap);
                c.flat.push(is_run);
            }
        }
        Ok(c)
    }
}

/// What a slot holds, by the name a stored row carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotState {
    /// An open kline.
    Open,
    /// Quiet since `open_time` at `close` (complete periods before it were emitted).
    Flat,
    Empty,
}

impl SlotState {
    pub const fn name(self) -> &'static str {
        match self {
            SlotState::Open => "open",
            SlotState::Flat => "flat",
            SlotState::Empty => "empty",
        }
    }

    pub fn named(name: &str) -> Result<SlotState, String> {
        match name {
            "open" => Ok(SlotState::Open),
            "flat" => Ok(SlotState::Flat),
            "empty" => Ok(SlotState::Empty),
            other => Err(format!("unknown slot state {other:?} (open, flat or empty)")),
        }
    }
}

/// A slot as a row: its state and a kline holding its values (a flat slot: quiet since
/// `open_time` at `close`).
pub fn slot_row(value: &SlotValue) -> (SlotState, Kline) {
    match *value {
        SlotValue::Open { kline, .. } => (SlotState::Open, kline),
        SlotValue::Flat { since, price } => (SlotState::Flat, Kline::flat(since, since - 1, price)),
        SlotValue::Empty => (SlotState::Empty, Kline::flat(0, -1, 0)),
    }
}

/// The inverse of [`slot_row`].
pub fn slot_value(state: SlotState, kline: Kline) -> SlotValue {
    match state {
        SlotState::Open => SlotValue::Open { next: kline.close_time + 1, kline },
        SlotState::Flat => SlotValue::Flat { since: kline.open_time, price: kline.close },
        SlotState::Empty => SlotValue::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interval::{Interval, TimeUnit};
    use crate::kline::FlatRun;

    #[test]
    fn a_flat_run_is_one_row_or_one_row_per_period() {
        let grids = [Grid::utc(Interval::Fixed { ms: 60_000 }, TimeUnit::Millis)];
        let symbol: Arc<str> = "BTCUSDT".into();
        let k = Kline::flat(0, 59_999, 7);
        let run = FlatRun { start: 60_000, end: 240_000, price: 7 };
        let recs = [
            Record::Kline {
                symbol: symbol.clone(),
                interval: 0,
                kline: k,
                revision: 1,
                gap: false,
            },
            Record::FlatRun { symbol, interval: 0, run, revision: 0, gap: true },
        ];
        let whole = RecordColumns::of(&grids, &recs, false).unwrap();
        assert_eq!(whole.flat, [false, true]);
        assert_eq!(whole.klines[1], Kline::flat(60_000, 239_999, 7));
        let expanded = RecordColumns::of(&grids, &recs, true).unwrap();
        assert_eq!(expanded.klines.len(), 4);
        assert_eq!(expanded.klines[3], Kline::flat(180_000, 239_999, 7));
        assert_eq!(expanded.revisions, [1, 0, 0, 0]);
        assert_eq!(expanded.gaps, [false, true, true, true]);
        assert!(expanded.flat.iter().all(|f| !f));
    }

    #[test]
    fn slots_round_trip_through_their_rows() {
        let k = Kline::flat(60_000, 119_999, 5);
        for v in [
            SlotValue::Open { kline: k, next: 120_000 },
            SlotValue::Flat { since: 180_000, price: 9 },
            SlotValue::Empty,
        ] {
            let (state, row) = slot_row(&v);
            assert_eq!(SlotState::named(state.name()), Ok(state));
            assert_eq!(slot_value(state, row), v);
        }
        assert!(SlotState::named("closed").unwrap_err().contains("\"closed\""));
    }
}
