//! Closing on the clock: open klines past their close plus grace, and quiet periods as
//! one flat run per slot.

use super::*;

impl PartitionState {
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
    pub(super) fn bucket_end(&mut self, i: usize, horizon: i64) -> i64 {
        if self.ends_at != Some(horizon) {
            self.ends = self.cfg.grids.iter().map(|g| g.bucket_start(horizon)).collect();
            self.ends_at = Some(horizon);
        }
        self.ends[i]
    }

    pub(super) fn held(&self, sym: usize) -> bool {
        self.symbols[sym].outage.as_ref().is_some_and(|g| g.held)
    }

    pub(super) fn sweep_symbol(&mut self, shared: &Shared, sym: usize, horizon: i64) {
        for i in 0..self.n {
            self.sweep_slot(shared, sym, i, horizon);
        }
    }

    pub(super) fn sweep_slot(&mut self, shared: &Shared, sym: usize, i: usize, horizon: i64) {
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
    pub(super) fn flat_until(&mut self, shared: &Shared, sym: usize, i: usize, horizon: i64) {
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
}
