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
