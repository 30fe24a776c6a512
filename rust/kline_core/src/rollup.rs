//! Klines of one interval → klines of a coarser one, exact. Only what the input implies:
//! a coarser period with no finer row gets no row (an exchange halt leaves none).

use crate::interval::{Grid, Interval, TimeUnit};
use crate::kline::Kline;
use crate::output::kline_csv_line;
use crate::parse::kline_row::parse_kline_csv;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RollupError {
    #[error(
        "kline opening at {open_time} spans two {interval} periods: the intervals do not nest"
    )]
    Straddles { open_time: i64, interval: String },
    #[error("klines are not in increasing open-time order at {open_time}")]
    Unordered { open_time: i64 },
    #[error("kline opening at {open_time} closes before it opens (close time {close_time})")]
    ClosesBeforeOpen { open_time: i64, close_time: i64 },
    /// A line of the input that is no Binance kline row (1-based).
    #[error("line {line}: {reason}")]
    BadLine { line: usize, reason: String },
}

/// Binance kline CSV lines of one interval → the lines of `to` (times in the input's unit;
/// `tz_offset_ms` and `anchor_3d_ms` place the coarser grid as Binance does).
pub fn rollup_csv<S: AsRef<str>>(
    lines: &[S],
    to: Interval,
    tz_offset_ms: i64,
    anchor_3d_ms: Option<i64>,
) -> Result<Vec<String>, RollupError> {
    let klines = lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            parse_kline_csv(l.as_ref())
                .map_err(|reason| RollupError::BadLine { line: i + 1, reason })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let unit = klines.first().map_or(TimeUnit::Millis, |k| TimeUnit::detect(k.open_time));
    let grid = Grid::new(to, unit, tz_offset_ms, anchor_3d_ms.unwrap_or(0));
    Ok(rollup(&klines, &grid)?.iter().map(kline_csv_line).collect())
}

/// Rolls finer klines (increasing open time, one interval) up to `coarse`.
///
/// - Flat rows (trades = 0) carry only the previous close: they never set open, high or low;
///   a period of flat rows only is a flat kline at that close.
/// - A coarser period with no finer row at all gets no row: nothing is invented.
/// - A row shorter than the longest one in the input was cut short (Binance ends the row
///   during which trading halted at the halt). If it is the last row of its coarser period,
///   the coarser row ends there too; if rows follow it in the period (trading resumed), the
///   coarser row ends where the last of them does.
pub fn rollup(finer: &[Kline], coarse: &Grid) -> Result<Vec<Kline>, RollupError> {
    let full_len = finer.iter().map(|k| k.close_time - k.open_time).max().unwrap_or(0);
    let mut out: Vec<Kline> = Vec::new();
    let mut prev_open = i64::MIN;
    for k in finer {
        if k.open_time <= prev_open {
            return Err(RollupError::Unordered { open_time: k.open_time });
        }
        if k.close_time < k.open_time {
            return Err(RollupError::ClosesBeforeOpen {
                open_time: k.open_time,
                close_time: k.close_time,
            });
        }
        prev_open = k.open_time;
        let start = coarse.bucket_start(k.open_time);
        if coarse.bucket_start(k.close_time) != start {
            return Err(RollupError::Straddles {
                open_time: k.open_time,
                interval: coarse.interval.to_string(),
            });
        }
        let cut_short = k.close_time - k.open_time < full_len;
        let close_time = if cut_short { k.close_time } else { coarse.close_time(start) };
        match out.last_mut() {
            Some(cur) if cur.open_time == start => {
                cur.absorb(k);
                cur.close_time = close_time;
            }
            _ => {
                // A flat row's close is the previous close, so the period starts flat at it.
                let mut cur = Kline::flat(start, close_time, k.close);
                cur.absorb(k);
                out.push(cur);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_lines_roll_up_and_a_bad_line_is_named() {
        let lines = [
            "0,1.0,2.0,0.5,1.5,1.0,59999,1.5,1,0.5,0.75,0",
            "60000,1.5,1.5,1.5,1.5,0.0,119999,0.0,0,0.0,0.0,0",
        ];
        let two = Interval::Fixed { ms: 120_000 };
        let got = rollup_csv(&lines, two, 0, None).unwrap();
        assert_eq!(
            got,
            ["0,1.00000000,2.00000000,0.50000000,1.50000000,1.00000000,119999,1.50000000,1,0.50000000,0.75000000,0"]
        );
        let bad = ["0,1.0,2.0"];
        let e = rollup_csv(&bad, two, 0, None).unwrap_err();
        assert!(matches!(e, RollupError::BadLine { line: 1, .. }), "{e}");
        assert!(e.to_string().starts_with("line 1: "), "{e}");
    }
    use crate::interval::{Interval, TimeUnit, DAY_MS, MINUTE_MS};

    const T0: i64 = 1_577_836_800_000; // 2020-01-01 00:00 UTC

    fn minute(open_time: i64, price: i64) -> Kline {
        let mut k = Kline::flat(open_time, open_time + MINUTE_MS - 1, price);
        k.trades = 1;
        k.volume = 1;
        (k.first_trade_id, k.last_trade_id) = (7, 7);
        k
    }

    #[test]
    fn a_coarse_period_with_no_finer_row_gets_no_row() {
        // Minutes 00:00 and 00:12: the 5m period 00:05 has no row at all, so none is made up.
        let five = Grid::utc(Interval::Fixed { ms: 5 * MINUTE_MS }, TimeUnit::Millis);
        let got = rollup(&[minute(T0, 10), minute(T0 + 12 * MINUTE_MS, 20)], &five).unwrap();
        let opens: Vec<i64> = got.iter().map(|k| k.open_time).collect();
        assert_eq!(opens, vec![T0, T0 + 10 * MINUTE_MS]);
        assert_eq!((got[1].open, got[1].close_time), (20, T0 + 15 * MINUTE_MS - 1));
    }

    #[test]
    fn flat_finer_rows_still_roll_up_into_a_flat_coarse_row() {
        // A traded minute 00:04, then five flat minutes (the input gives them): 5m 00:05 is
        // a flat kline at the previous close, ending on the grid.
        let five = Grid::utc(Interval::Fixed { ms: 5 * MINUTE_MS }, TimeUnit::Millis);
        let mut rows = vec![minute(T0 + 4 * MINUTE_MS, 10)];
        for m in 5..10 {
            let open = T0 + m * MINUTE_MS;
            rows.push(Kline::flat(open, open + MINUTE_MS - 1, 10));
        }
        let got = rollup(&rows, &five).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Kline::flat(T0 + 5 * MINUTE_MS, T0 + 10 * MINUTE_MS - 1, 10));
    }

    /// Binance's 2018-02-08 halt: trading stopped at 00:28:14.788 and did not resume that day.
    const HALT_DAY: i64 = 1_518_048_000_000; // 2018-02-08 00:00 UTC
    const HALTED_AT: i64 = 1_518_049_694_788; // the close time Binance prints for the row

    fn quarter(open_time: i64, o: i64, h: i64, l: i64, c: i64, trades: u64) -> Kline {
        let mut k = Kline::flat(open_time, open_time + 15 * MINUTE_MS - 1, o);
        (k.high, k.low, k.close) = (h, l, c);
        (k.trades, k.volume, k.quote_volume) = (trades, 100_000_000, 700_000_000_000 * 100_000_000);
        (k.taker_buy_volume, k.taker_buy_quote_volume) =
            (50_000_000, 350_000_000_000 * 100_000_000);
        (k.first_trade_id, k.last_trade_id) =
            (open_time / 1000, open_time / 1000 + trades as i64 - 1);
        k
    }

    #[test]
    fn the_row_cut_short_by_a_halt_ends_every_coarser_row_containing_it() {
        // 15m rows of 2018-02-07 (full) and 2018-02-08 00:00 (full) and 00:15 (cut short by the
        // halt); nothing after: Binance has no rows for the halted span.
        let px = 100_000_000;
        let mut rows: Vec<Kline> = (0..96)
            .map(|q| {
                quarter(
                    HALT_DAY - DAY_MS + q * 15 * MINUTE_MS,
                    7600 * px,
                    7700 * px,
                    7500 * px,
                    7600 * px,
                    3,
                )
            })
            .collect();
        rows.push(quarter(HALT_DAY, 7599 * px, 7700 * px, 757_209_000_000, 7650 * px, 5));
        let mut cut =
            quarter(HALT_DAY + 15 * MINUTE_MS, 7650 * px, 7844 * px, 7600 * px, 778_402_000_000, 4);
        cut.close_time = HALTED_AT;
        rows.push(cut);
        let want = "1518048000000,7599.00000000,7844.00000000,7572.09000000,7784.02000000,\
                    2.00000000,1518049694788,14000.00000000,9,1.00000000,7000.00000000,0";
        for name in ["30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d"] {
            let grid = Grid::utc(name.parse().unwrap(), TimeUnit::Millis);
            let got = rollup(&rows, &grid).unwrap();
            let (last, before) = got.split_last().unwrap();
            assert_eq!(crate::output::kline_csv_line(last), want, "{name}");
            // Every period of the day before is whole and ends on its grid.
            let len = grid.period_len().unwrap();
            assert_eq!(before.len() as i64, DAY_MS / len, "{name}");
            for k in before {
                assert_eq!(k.close_time, k.open_time + len - 1, "{name}");
            }
        }
    }

    #[test]
    fn after_a_halt_a_coarser_row_ends_where_its_last_row_does() {
        // 1d rows: 2018-02-07, 02-08 cut short at the halt, 02-09 (trading resumed). BTCUSDT's
        // real 3d row 2018-02-07 and 1w row 2018-02-05 end on their grid (finom/static-klines).
        let day = |open: i64| {
            let mut k = minute(open, 10);
            k.close_time = open + DAY_MS - 1;
            k
        };
        let mut cut = day(HALT_DAY);
        cut.close_time = HALTED_AT;
        let rows = [day(HALT_DAY - DAY_MS), cut, day(HALT_DAY + DAY_MS)];
        let anchor = 1_502_928_000_000; // BTCUSDT's first 1d kline, 2017-08-17
        let three = Grid::new(Interval::ThreeDay, TimeUnit::Millis, 0, anchor);
        let got = rollup(&rows, &three).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].open_time, got[0].close_time), (HALT_DAY - DAY_MS, 1_518_220_799_999));
        // Cut short and last of its period: the coarser row ends at the halt.
        let got = rollup(&rows[..2], &three).unwrap();
        assert_eq!(got[0].close_time, HALTED_AT);
    }

    #[test]
    fn a_row_that_closes_before_it_opens_is_refused() {
        let mut k = minute(T0, 10);
        k.close_time = T0 - 1;
        let five = Grid::utc(Interval::Fixed { ms: 5 * MINUTE_MS }, TimeUnit::Millis);
        assert_eq!(
            rollup(&[k], &five),
            Err(RollupError::ClosesBeforeOpen { open_time: T0, close_time: T0 - 1 })
        );
    }
}
