//! Exchange halts (`BREAK`/`HALT`): the symbol keeps its slots and state, and the clock emits
//! no quiet periods for it. Binance writes no rows while trading is halted, so neither does
//! the engine: the kline open at the halt closes as usual, and no quiet period from the one
//! holding the halt to the one holding the resume is ever flat, also when a gap in the feed
//! rewinds the symbol to before the halt and replays it. Trading resumes with `resume` or
//! with the first trade timed after the halt, whichever is earlier (exchangeInfo is polled;
//! the trades may tell sooner).

use super::{PartitionState, Shared, SlotState};
use crate::kline::FlatRun;

impl PartitionState {
    /// Interval `i`'s periods without rows, `[from, to)` by open time: from the period holding
    /// the halt to the one holding the resume (`to` = `i64::MAX` while halted; both `i64::MAX`
    /// without a halt).
    #[inline]
    fn halted_span(&self, sym: usize, i: usize) -> (i64, i64) {
        let s = &self.symbols[sym];
        if s.halted_at == i64::MAX {
            return (i64::MAX, i64::MAX);
        }
        let grid = self.grid(sym, i);
        let from = grid.bucket_start(s.halted_at);
        let to = if s.resumed_at == i64::MAX { i64::MAX } else { grid.bucket_start(s.resumed_at) };
        (from, to.max(from))
    }

    /// True while the halt holds for interval `i` at `end`: quiet periods stop at the halt.
    #[inline]
    pub(super) fn halted_before(&self, sym: usize, i: usize, end: i64) -> Option<i64> {
        let (from, to) = self.halted_span(sym, i);
        (to == i64::MAX && end > from).then_some(from)
    }

    /// Emits the quiet periods `[start, end)` of interval `i` at `price`, less the halted span.
    pub(super) fn emit_quiet(
        &mut self,
        shared: &Shared,
        sym: usize,
        i: usize,
        start: i64,
        end: i64,
        price: i64,
    ) {
        let (from, to) = self.halted_span(sym, i);
        if start < end.min(from) {
            self.emit_flat(shared, sym, i, FlatRun { start, end: end.min(from), price });
        }
        if start.max(to) < end {
            self.emit_flat(shared, sym, i, FlatRun { start: start.max(to), end, price });
        }
    }

    /// A trade at `time` after the halt: trading resumed then (or earlier, if already known).
    #[inline]
    pub(super) fn resumed_by_trade(&mut self, sym: usize, time: i64) {
        let s = &mut self.symbols[sym];
        if s.halted_at <= time && time < s.resumed_at {
            s.resumed_at = time;
        }
    }

    /// The exchange halted the symbol; `now` is the clock. A second halt while halted keeps
    /// the first; a halt after a resume starts a new span.
    pub fn halt(&mut self, sym: usize, now: i64) {
        let s = &mut self.symbols[sym];
        if s.halted_at == i64::MAX || s.resumed_at != i64::MAX {
            (s.halted_at, s.resumed_at) = (now, i64::MAX);
        }
    }

    /// Trading again since `now` (or since an earlier trade): quiet periods still owed from
    /// before the halt are emitted, quiet slots move past the halted span (so a later halt
    /// cannot bring it back), and the clock sweeps them again.
    pub fn resume(&mut self, shared: &Shared, sym: usize, now: i64) {
        if self.symbols[sym].halted_at == i64::MAX {
            return;
        }
        let s = &mut self.symbols[sym];
        s.resumed_at = s.resumed_at.min(now);
        for i in 0..self.n {
            let idx = sym * self.n + i;
            if self.table.state[idx] != SlotState::Flat {
                continue;
            }
            let (from, to) = self.halted_span(sym, i);
            let since = self.table.open_time[idx];
            if since < from {
                let price = self.table.close[idx];
                self.emit_flat(shared, sym, i, FlatRun { start: since, end: from, price });
            }
            let since = since.max(to);
            self.table.open_time[idx] = since;
            self.table.next[idx] = self.grid(sym, i).next_start(since);
            self.table.mark_dirty(idx);
            let s = &mut self.symbols[sym];
            s.late_before = s.late_before.max(since);
        }
    }
}
