//! Declared feed outages: klines closing meanwhile marked gap, live trades held with the
//! backfill, and the replay in id order that re-emits what changed.

use super::*;

impl PartitionState {
    /// The feed of the symbol is down since `since`: what closes from now on is marked gap,
    /// and live trades wait for the backfill (see [`Outage`]). With `hold`, nothing of the symbol
    /// closes at all until `feed_up` (a catch-up expected to be short: history, a restart).
    pub fn feed_down(&mut self, sym: usize, since: i64, hold: bool) {
        let n = self.n;
        if !self.symbols[sym].live {
            return;
        }
        if self.symbols[sym].last_id == i64::MIN {
            let s = &mut self.symbols[sym];
            s.complete_from = s.complete_from.min(since);
        }
        if let Some(g) = self.symbols[sym].outage.as_mut() {
            g.since = g.since.min(since);
            return;
        }
        // Rewind point: the state right after the last trade. A kline the clock closed since
        // then (it may lack trades the gap hid) is reopened; what was emitted from it on is
        // owed a revision.
        let mut saved = Vec::with_capacity(n);
        let mut emitted_until = vec![i64::MIN; n];
        for (i, owed) in emitted_until.iter_mut().enumerate() {
            let idx = sym * n + i;
            let value = self.table.value(idx);
            match (value, self.swept.get(idx).and_then(|k| k.as_deref().copied())) {
                (SlotValue::Flat { since: quiet_from, .. }, Some(k)) if since <= k.close_time => {
                    saved.push(SlotValue::Open { kline: k, next: k.close_time + 1 });
                    *owed = quiet_from;
                }
                _ => saved.push(value),
            }
        }
        let late_before = saved.iter().map(SlotValue::start).max().unwrap_or(i64::MIN);
        let s = &mut self.symbols[sym];
        s.outage = Some(Box::new(Outage {
            since,
            saved,
            saved_last_id: s.last_id,
            saved_late_before: late_before,
            pending: Vec::new(),
            emitted_until,
            held: hold,
        }));
    }

    /// Holds trades of a symbol whose feed is down; false (counted) when over the bound.
    pub(super) fn defer(&mut self, sym: usize, t: &Trade) -> bool {
        let Some(g) = self.symbols[sym].outage.as_mut() else { return false };
        if g.pending.len() >= MAX_GAP_PENDING {
            self.tally.gap_overflow += 1;
        } else {
            g.pending.push(*t);
        }
        true
    }

    /// Backfill trades (any order, duplicates allowed) for a symbol whose feed is down.
    /// Returns false if the symbol is not in a gap (nothing to fill).
    pub fn backfill(&mut self, sym: usize, trades: &[Trade]) -> bool {
        if self.symbols[sym].outage.is_none() {
            return false;
        }
        for t in trades {
            self.defer(sym, t);
        }
        true
    }

    /// The feed is back: rewind the symbol to where it was when the feed went down, apply the
    /// backfill and the held live trades in id order, and close what the clock has passed.
    /// Klines emitted as gap meanwhile come again as revision 1, exact unless ids are missing.
    pub fn feed_up(&mut self, shared: &Shared, sym: usize, now: i64, holes: Holes) {
        let Some(outage) = self.symbols[sym].outage.take() else { return };
        let Outage {
            since,
            saved,
            saved_last_id,
            saved_late_before,
            mut pending,
            emitted_until,
            held,
        } = *outage;
        for (i, value) in saved.iter().enumerate() {
            self.table.restore(sym * self.n + i, value);
        }
        let s = &mut self.symbols[sym];
        s.last_id = saved_last_id;
        s.late_before = saved_late_before;
        s.revise_before = Some(emitted_until.clone());
        s.holes.clear();
        pending.sort_by_key(|t| t.id);
        pending.dedup_by_key(|t| t.id);
        if let Holes::AcceptBelow(from_id) = holes {
            let before = pending.len();
            pending.retain(|t| t.id < from_id);
            self.tally.implausible_id += (before - pending.len()) as u64;
        }
        let accept_holes = holes != Holes::Ask;
        let s = &mut self.symbols[sym];
        let (slot, generation) = (sym as u32, s.generation);
        let mut prev: Option<Trade> = None;
        let mut reopened = None;
        self.replaying = true;
        for (k, t) in pending.iter().enumerate() {
            let last = self.symbols[sym].last_id;
            if t.id > last.saturating_add(1) && last != i64::MIN {
                let from = prev.map_or(since, |p| p.time);
                self.tally.id_gaps += 1;
                if !accept_holes {
                    reopened = Some((k, from, last));
                    break;
                }
                self.symbols[sym].holes.push((from, t.time));
            }
            self.trade(shared, slot, generation, t, now);
            if self.symbols[sym].last_id == t.id {
                prev = Some(*t);
            }
        }
        self.replaying = false;
        if let Some((k, from, last)) = reopened {
            // Another hole further on: down again from here, with what is left, and ask for it.
            // Periods emitted as gap before are still owed a revision.
            self.symbols[sym].revise_before = None;
            self.feed_down(sym, from, held);
            if let Some(g) = self.symbols[sym].outage.as_mut() {
                g.pending.extend_from_slice(&pending[k..]);
                for (mine, old) in g.emitted_until.iter_mut().zip(&emitted_until) {
                    *mine = (*mine).max(*old);
                }
            }
            let to_id = pending.last().map_or(pending[k].id, |t| t.id) - 1;
            // Ask for everything up to the last trade held: later holes come in the same fetch.
            let hole = IdHole {
                symbol: self.symbols[sym].name.clone(),
                from_id: last + 1,
                to_id,
                since: from,
            };
            self.report_hole(shared, sym, hole);
            return;
        }
        self.sweep_symbol(shared, sym, now - self.cfg.grace);
        self.symbols[sym].revise_before = None;
    }
}
