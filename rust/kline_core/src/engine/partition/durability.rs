//! Snapshots of what changed (dirty slots and checkpoints), their acknowledgement, restores
//! from a store, and a symbol put back after a worker panic.

use super::*;

impl PartitionState {
    /// Copies out the slots and checkpoints changed since the last acknowledged snapshot.
    pub fn snapshot(&mut self, partition: usize, seq: u64) -> PartitionSnapshot {
        let taken = self.table.dirty.take(seq).to_vec();
        let slots = taken
            .iter()
            .map(|&idx| {
                let idx = idx as usize;
                let (sym, i) = (idx / self.n, idx % self.n);
                SlotSnapshot {
                    symbol: self.symbols[sym].name.clone(),
                    interval: i as u16,
                    value: self.table.value(idx),
                }
            })
            .collect();
        let taken = self.checkpoints.take(seq).to_vec();
        let checkpoints = taken
            .iter()
            .map(|&sym| {
                let s = &self.symbols[sym as usize];
                Checkpoint { symbol: s.name.clone(), last_id: s.last_id }
            })
            .collect();
        // Closed records still waiting for room in the outbox: a consumer that drains the
        // outbox now has not seen everything these checkpoints include.
        PartitionSnapshot { partition, seq, slots, checkpoints }
    }

    pub fn ack_snapshot(&mut self, seq: u64) -> bool {
        let a = self.table.dirty.ack(seq);
        let b = self.checkpoints.ack(seq);
        a || b
    }

    /// Puts slots and checkpoints of live symbols back; returns how many were applied. With
    /// `hold`, each restored symbol waits (its trades held, its klines not closed by the
    /// clock) for the trades after its checkpoint: `backfill`, then `feed_up`.
    ///
    /// A symbol whose feed is already down (`feed_down` before `restore`) takes the restored
    /// state as its rewind point too: `feed_up` rewinds to what was restored, not to what the
    /// symbol held when its feed went down.
    pub fn restore(
        &mut self,
        slots: &[(u32, u32, u16, SlotValue)],
        checkpoints: &[(u32, u32, i64)],
        hold: bool,
    ) -> usize {
        let mut applied = 0;
        for &(slot, generation, interval, value) in slots {
            let sym = slot as usize;
            if self.is_live(sym, generation) && (interval as usize) < self.n {
                self.table.restore(sym * self.n + interval as usize, &value);
                let start = value.start();
                let s = &mut self.symbols[sym];
                s.late_before = s.late_before.max(start);
                if let Some(g) = s.outage.as_mut() {
                    g.saved[interval as usize] = value;
                    g.saved_late_before = g.saved_late_before.max(start);
                }
                applied += 1;
            }
        }
        for &(slot, generation, last_id) in checkpoints {
            let sym = slot as usize;
            if self.is_live(sym, generation) {
                let s = &mut self.symbols[sym];
                s.last_id = last_id;
                if let Some(g) = s.outage.as_mut() {
                    g.saved_last_id = last_id;
                }
                self.checkpoints.mark(sym);
                applied += 1;
            }
        }
        if hold {
            let touched =
                slots.iter().map(|s| (s.0, s.1)).chain(checkpoints.iter().map(|c| (c.0, c.1)));
            for (slot, generation) in touched {
                let sym = slot as usize;
                if !self.is_live(sym, generation) {
                    continue;
                }
                match self.symbols[sym].outage.as_mut() {
                    Some(g) => g.held = true,
                    None => self.feed_down(sym, self.symbols[sym].late_before, true),
                }
            }
        }
        applied
    }

    /// After a panic while applying a trade of `slot`: its state may be half-updated, so it
    /// goes back to the last acknowledged snapshot. Returns the checkpoint it resumes from.
    pub fn recover_symbol(&mut self, durable: &Durable, slot: u32) -> Option<(Arc<str>, i64)> {
        let sym = slot as usize;
        let s = self.symbols.get(sym).filter(|s| s.live)?;
        let name = s.name.clone();
        let (values, last_id) = durable.get(&name);
        for (i, value) in values.iter().enumerate() {
            self.table.restore(sym * self.n + i, value);
        }
        let late_before = (0..self.n)
            .map(|i| self.table.value(sym * self.n + i).start())
            .max()
            .unwrap_or(i64::MIN);
        let s = &mut self.symbols[sym];
        s.last_id = last_id;
        s.late_before = late_before;
        self.checkpoints.mark(sym);
        Some((name, last_id))
    }
}
