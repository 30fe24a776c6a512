//! Exchange halts (`BREAK`/`HALT`): the symbol keeps its slots and state, and the clock emits
//! no quiet periods for it. Binance writes no rows while trading is halted, so neither does
//! the engine: the kline open at the halt closes as usual; from the period holding the halt
//! on, nothing is flat until trading resumes, and the halted span never gets rows. Trading
//! resumes with `resume` or with the first trade after the halt (`Book::trade`), whichever
//! comes first: exchangeInfo is polled, the trades may tell sooner.

use super::{Book, Shared, SlotState};
use crate::kline::FlatRun;

impl Book {
    /// The end of the quiet periods owed up to `end` for interval `i`: all of them while
    /// trading; while halted, only those before the period in which the halt was learnt.
    #[inline]
    pub(super) fn quiet_until(&self, sym: usize, i: usize, end: i64) -> i64 {
        match self.symbols[sym].halted_at {
            i64::MAX => end,
            at => end.min(self.grid(sym, i).bucket_start(at)),
        }
    }

    /// The exchange halted the symbol; `now` is the clock. Idempotent: a second halt keeps
    /// the first time.
    pub fn halt(&mut self, sym: usize, now: i64) {
        let s = &mut self.symbols[sym];
        s.halted_at = s.halted_at.min(now);
    }

    /// Trading again since `now`: quiet periods still owed from before the halt are emitted,
    /// the halted span is skipped (no rows), and from the period holding `now` on, quiet
    /// periods are flat again.
    pub fn resume(&mut self, shared: &Shared, sym: usize, now: i64) {
        if self.symbols[sym].halted_at == i64::MAX {
            return;
        }
        for i in 0..self.n {
            let idx = sym * self.n + i;
            if self.table.state[idx] != SlotState::Flat {
                continue;
            }
            let since = self.table.open_time[idx];
            let owed = self.quiet_until(sym, i, i64::MAX);
            if since < owed {
                let run = FlatRun { start: since, end: owed, price: self.table.close[idx] };
                self.emit_flat(shared, sym, i, run);
            }
            let grid = self.grid(sym, i);
            let from = since.max(grid.bucket_start(now));
            self.table.open_time[idx] = from;
            self.table.next[idx] = grid.next_start(from);
            self.table.mark_dirty(idx);
            let s = &mut self.symbols[sym];
            s.late_before = s.late_before.max(from);
        }
        self.symbols[sym].halted_at = i64::MAX;
    }
}
