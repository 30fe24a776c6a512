//! Emitting closed records: into the chunk being filled, sealed into the outbox or
//! spilled behind it (never dropped), and holes in ids handed on as the holes queue has room.

use super::*;

impl PartitionState {
    /// Asks for a repair of `hole` in slot `sym`: on the holes queue, or, while it is full,
    /// after the ones already waiting (never dropped: the symbol stays down until repaired).
    pub(super) fn report_hole(&mut self, shared: &Shared, sym: usize, hole: IdHole) {
        let generation = self.symbols[sym].generation;
        self.unreported.push_back((sym, generation, hole));
        self.report_waiting_holes(shared);
    }

    /// Moves waiting holes onto the holes queue as it has room, skipping those of symbols
    /// removed or no longer down since.
    pub fn report_waiting_holes(&mut self, shared: &Shared) {
        while let Some((sym, generation, hole)) = self.unreported.pop_front() {
            if !self.is_live(sym, generation) || self.symbols[sym].outage.is_none() {
                continue;
            }
            if let Err(hole) = shared.holes.push(hole) {
                self.unreported.push_front((sym, generation, hole));
                return;
            }
        }
    }

    pub(super) fn grid(&self, sym: usize, i: usize) -> Grid {
        let g = self.cfg.grids[i];
        if g.interval == Interval::ThreeDay {
            Grid::new(g.interval, g.unit, self.cfg.tz_offset_ms, self.symbols[sym].anchor_3d)
        } else {
            g
        }
    }

    pub(super) fn emit(&mut self, shared: &Shared, r: Record) {
        match &r {
            Record::Kline { .. } => self.tally.closed += 1,
            Record::FlatRun { .. } => self.tally.flat_runs += 1,
        }
        self.pending.push(r);
        if self.pending.len() >= OUT_CHUNK {
            self.flush_spill(shared);
        }
    }

    /// Gap flag and revision of a record for `[start, end)` of the symbol's interval `i`.
    pub(super) fn marks(&mut self, sym: usize, i: usize, start: i64, end: i64) -> (bool, u32) {
        let s = &mut self.symbols[sym];
        let mut gap =
            start <= s.partial_before || s.holes.iter().any(|&(a, b)| start <= b && end > a);
        if let Some(g) = s.outage.as_mut().filter(|g| end > g.since) {
            gap = true;
            g.emitted_until[i] = g.emitted_until[i].max(end);
        }
        let revision = s.revise_before.as_ref().is_some_and(|r| start < r[i]).into();
        (gap, revision)
    }

    pub(super) fn emit_kline(&mut self, shared: &Shared, sym: usize, i: usize, kline: Kline) {
        let (gap, revision) = self.marks(sym, i, kline.open_time, kline.close_time + 1);
        if !self.last_closed.is_empty() {
            self.last_closed[sym * self.n + i] = Some((kline, revision));
        }
        let symbol = self.symbols[sym].name.clone();
        self.emit(shared, Record::Kline { symbol, interval: i as u16, kline, revision, gap });
    }

    pub(super) fn emit_flat(&mut self, shared: &Shared, sym: usize, i: usize, run: FlatRun) {
        let (gap, revision) = self.marks(sym, i, run.start, run.end);
        if !self.last_closed.is_empty() {
            self.last_closed[sym * self.n + i] = None; // flat periods follow: not amendable
        }
        let symbol = self.symbols[sym].name.clone();
        self.emit(shared, Record::FlatRun { symbol, interval: i as u16, run, revision, gap });
    }

    /// Seals the chunk being filled and hands it on: to the outbox, or behind it to the
    /// overflow when the outbox is full (never dropped); moves overflow into the outbox as room
    /// appears. True when nothing waits in the overflow.
    pub fn flush_spill(&mut self, shared: &Shared) -> bool {
        let chunk = (!self.pending.is_empty()).then(|| {
            let fresh = shared.spare.pop().unwrap_or_else(|| Vec::with_capacity(OUT_CHUNK));
            std::mem::replace(&mut self.pending, fresh)
        });
        if shared.spilled.load(Ordering::Acquire) == 0 {
            let Some(chunk) = chunk else { return true };
            match shared.outbox.push(chunk) {
                Ok(()) => {
                    self.emitted = true;
                    return true;
                }
                Err(chunk) => return self.overflow(shared, Some(chunk)),
            }
        }
        self.overflow(shared, chunk)
    }

    #[cold]
    pub(super) fn overflow(&mut self, shared: &Shared, chunk: Option<Vec<Record>>) -> bool {
        let mut over = lock(&shared.overflow);
        if let Some(chunk) = chunk {
            shared.spilled.fetch_add(chunk.len(), Ordering::Release);
            over.push_back(chunk);
        }
        while let Some(chunk) = over.pop_front() {
            let len = chunk.len();
            if let Err(chunk) = shared.outbox.push(chunk) {
                over.push_front(chunk);
                break;
            }
            shared.spilled.fetch_sub(len, Ordering::Release);
        }
        self.emitted = true; // a consumer may take from the overflow as well
        over.is_empty()
    }

    /// Closed records not yet in the outbox.
    #[inline]
    pub fn spilled(&self, shared: &Shared) -> usize {
        self.pending.len() + shared.spilled.load(Ordering::Relaxed)
    }
}
