//! Klines of one interval → klines of a coarser one, exact, flat periods included.

use crate::interval::Grid;
use crate::kline::Kline;
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RollupError {
    #[error(
        "kline opening at {open_time} spans two {interval} periods: the intervals do not nest"
    )]
    Straddles { open_time: i64, interval: String },
    #[error("klines are not in increasing open-time order at {open_time}")]
    Unordered { open_time: i64 },
}

/// Rolls finer klines (increasing open time) up to `coarse`.
///
/// Flat rows (trades = 0) carry only the previous close: they never set open, high or low.
/// A coarser period with no finer row at all is a flat kline at the previous close.
pub fn rollup(finer: &[Kline], coarse: &Grid) -> Result<Vec<Kline>, RollupError> {
    let mut out: Vec<Kline> = Vec::new();
    let mut prev_open = i64::MIN;
    for k in finer {
        if k.open_time <= prev_open {
            return Err(RollupError::Unordered { open_time: k.open_time });
        }
        prev_open = k.open_time;
        let start = coarse.bucket_start(k.open_time);
        if coarse.bucket_start(k.close_time) != start {
            return Err(RollupError::Straddles {
                open_time: k.open_time,
                interval: coarse.interval.to_string(),
            });
        }
        match out.last_mut() {
            Some(cur) if cur.open_time == start => cur.absorb(k),
            last => {
                if let Some(&Kline { open_time, close: prev_close, .. }) = last.as_deref() {
                    let mut gap = coarse.next_start(open_time);
                    while gap < start {
                        let next = coarse.next_start(gap);
                        out.push(Kline::flat(gap, next - 1, prev_close));
                        gap = next;
                    }
                }
                // A flat row's close is the previous close, so the period starts flat at it.
                let mut cur = Kline::flat(start, coarse.close_time(start), k.close);
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
    use crate::interval::{Interval, TimeUnit, MINUTE_MS};

    const T0: i64 = 1_577_836_800_000; // 2020-01-01 00:00 UTC

    fn minute(open_time: i64, price: i64) -> Kline {
        let mut k = Kline::flat(open_time, open_time + MINUTE_MS - 1, price);
        k.trades = 1;
        k.volume = 1;
        (k.first_trade_id, k.last_trade_id) = (7, 7);
        k
    }

    #[test]
    fn a_coarse_period_with_no_finer_row_is_flat_at_the_previous_close() {
        // Minutes 00:00 and 00:12: the 5m period 00:05 has no row at all.
        let five = Grid::utc(Interval::Fixed { ms: 5 * MINUTE_MS }, TimeUnit::Millis);
        let got = rollup(&[minute(T0, 10), minute(T0 + 12 * MINUTE_MS, 20)], &five).unwrap();
        let opens: Vec<i64> = got.iter().map(|k| k.open_time).collect();
        assert_eq!(opens, vec![T0, T0 + 5 * MINUTE_MS, T0 + 10 * MINUTE_MS]);
        let gap = got[1];
        assert_eq!(gap.close_time, T0 + 10 * MINUTE_MS - 1);
        assert_eq!((gap.open, gap.close, gap.trades, gap.volume), (10, 10, 0, 0));
        assert_eq!((gap.first_trade_id, gap.last_trade_id), (-1, -1));
        assert_eq!((got[2].open, got[2].close_time), (20, T0 + 15 * MINUTE_MS - 1));
    }
}
