//! Applying one trade: plausibility, duplicates, holes in ids, late trades (amended or
//! handed out), and rolling each interval's slot.

use super::*;

impl PartitionState {
    /// Applies one trade of the symbol in `slot`; `now` is the clock (read only when a bound
    /// against it is set).
    #[inline]
    pub fn trade(&mut self, shared: &Shared, slot: u32, generation: u32, t: &Trade, now: i64) {
        let sym = slot as usize;
        let c = &mut self.tally;
        let Some(s) = self.symbols.get_mut(sym).filter(|s| s.live && s.generation == generation)
        else {
            c.stale_symbol += 1;
            return;
        };
        // Plain bounds first (a few compares); the limits themselves decide what fails them.
        let b = self.bounds;
        let first = s.max_time == i64::MIN;
        let clear = t.time >= b.lo
            && t.time < b.hi
            && t.time <= now.saturating_add(b.ahead)
            && (first
                || (t.time <= s.max_time.saturating_add(b.jump)
                    && t.id <= s.last_id.saturating_add(MAX_IDS_PER_SECOND)));
        if !clear && self.refuse_implausible(sym, t, now) {
            return;
        }
        let (c, s) = (&mut self.tally, &mut self.symbols[sym]);
        if s.outage.is_some() {
            self.defer(sym, t);
            return;
        }
        if t.id <= s.last_id {
            c.duplicates += 1;
            return;
        }
        if self.cfg.detect_id_gaps
            && !self.replaying
            && s.last_id != i64::MIN
            && t.id > s.last_id + 1
        {
            let hole = IdHole {
                symbol: s.name.clone(),
                from_id: s.last_id + 1,
                to_id: t.id - 1,
                since: s.max_time,
            };
            c.id_gaps += 1;
            self.feed_down(sym, hole.since, false);
            self.defer(sym, t);
            self.report_hole(shared, sym, hole);
            return;
        }
        match t.defect() {
            Some(Skip::Placeholder) => return c.placeholders += 1,
            Some(_) => return c.invalid += 1,
            None => {}
        }
        if s.last_id == i64::MIN && self.cfg.mark_partial_start {
            s.partial_before = t.time.min(s.complete_from) - 1;
        }
        s.last_id = t.id;
        self.checkpoints.mark(sym);
        if t.time < s.late_before {
            c.late += 1;
            if self.amend(shared, sym, t) {
                self.tally.late_amended += 1;
            } else if shared
                .late
                .push(LateTrade { symbol: self.symbols[sym].name.clone(), trade: *t })
                .is_err()
            {
                self.tally.late_overflow += 1;
            }
            return;
        }
        c.trades += 1;
        s.max_time = s.max_time.max(t.time);
        c.watermark = c.watermark.max(t.time);
        let rule = s.quote_rule;
        self.resumed_by_trade(sym, t.time);
        let mut roll = self.table.apply_run(sym * self.n, self.n, t, rule);
        while roll != 0 {
            let i = roll.trailing_zeros() as usize;
            roll &= roll - 1;
            self.roll(shared, sym, i, t);
        }
    }

    /// The full check of a trade that failed the plain bounds: counts it by reason and says
    /// whether it is refused.
    #[cold]
    pub(super) fn refuse_implausible(&mut self, sym: usize, t: &Trade, now: i64) -> bool {
        let s = &self.symbols[sym];
        let limits = self.cfg.limits;
        let last = (s.max_time != i64::MIN).then_some(s.max_time);
        let mut verdict = limits.check(t.time, Some(now), last);
        if verdict.is_ok() && last.is_some() && t.id > s.last_id {
            verdict = limits.check_id(t.id, t.time, s.last_id, s.max_time);
        }
        let c = &mut self.tally;
        match verdict {
            Ok(()) => return false,
            Err(Implausible::Unit) => c.implausible_unit += 1,
            // (EventSkew is check_relayed's alone: check and check_id never give it.)
            Err(Implausible::AheadOfClock | Implausible::EventSkew) => c.implausible_ahead += 1,
            Err(Implausible::Jump) => c.implausible_jump += 1,
            Err(Implausible::IdJump) => c.implausible_id += 1,
        }
        true
    }

    /// `LatePolicy::Amend`: adds a late trade to the open bucket or to the latest closed kline
    /// of every interval and re-emits those with `revision + 1`; false (nothing changed) if
    /// any interval cannot take it, so intervals never disagree.
    pub(super) fn amend(&mut self, shared: &Shared, sym: usize, t: &Trade) -> bool {
        let LatePolicy::Amend { allowed_lateness } = self.cfg.late else { return false };
        // A symbol restored from a snapshot has no trade time yet (MIN): nothing is too old.
        let horizon = self.symbols[sym].max_time.saturating_sub(allowed_lateness);
        let base = sym * self.n;
        let fits = (0..self.n).all(|i| {
            let idx = base + i;
            let open =
                self.table.state[idx] == SlotState::Open && t.time >= self.table.open_time[idx];
            let closed = self.last_closed[idx].is_some_and(|(k, _)| {
                k.open_time <= t.time
                    && t.time <= k.close_time
                    && k.close_time >= horizon
                    && !k.is_flat()
            });
            (open && t.time < self.table.next[idx]) || (!open && closed)
        });
        if !fits {
            return false;
        }
        let rule = self.symbols[sym].quote_rule;
        for i in 0..self.n {
            let idx = base + i;
            if self.table.state[idx] == SlotState::Open && t.time >= self.table.open_time[idx] {
                self.table.apply(idx, t, rule);
                continue;
            }
            let Some((mut k, revision)) = self.last_closed[idx] else { continue };
            k.apply(t, rule);
            if self.table.state[idx] == SlotState::Flat {
                self.table.close[idx] = k.close; // quiet periods after it carry its close
            }
            let (gap, _) = self.marks(sym, i, k.open_time, k.close_time + 1);
            self.last_closed[idx] = Some((k, revision + 1));
            let symbol = self.symbols[sym].name.clone();
            self.emit(
                shared,
                Record::Kline { symbol, interval: i as u16, kline: k, revision: revision + 1, gap },
            );
        }
        true
    }

    /// The trade belongs to a later bucket than the slot's: close what is there, open anew.
    #[cold]
    pub(super) fn roll(&mut self, shared: &Shared, sym: usize, i: usize, t: &Trade) {
        let idx = sym * self.n + i;
        let grid = self.grid(sym, i);
        let start = grid.bucket_start(t.time);
        let next = grid.next_start(start);
        match self.table.state[idx] {
            SlotState::Open => {
                let kline = self.table.kline(idx);
                self.emit_kline(shared, sym, i, kline);
                self.emit_quiet(shared, sym, i, kline.close_time + 1, start, kline.close);
            }
            SlotState::Flat => {
                let (since, price) = (self.table.open_time[idx], self.table.close[idx]);
                self.emit_quiet(shared, sym, i, since, start, price);
            }
            SlotState::Empty => {}
        }
        let rule = self.symbols[sym].quote_rule;
        self.table.open_with(idx, t, start, next, rule);
        if !self.swept.is_empty() {
            self.swept[idx] = None;
        }
        let s = &mut self.symbols[sym];
        s.late_before = s.late_before.max(start);
    }
}
