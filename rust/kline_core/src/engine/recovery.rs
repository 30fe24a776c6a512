//! Durability and repair: snapshots of what changed and their acknowledgement, restoring
//! stored state, declared feed outages with their backfill, and exchange halts.

use super::output::{self, PartitionSnapshot};
use super::partition::{self, Holes, Item};
use super::sync::lock;
use super::table::SlotValue;
use super::{Engine, EngineError};
use crate::trade::Trade;
use std::sync::atomic::Ordering::Relaxed;

/// What changed since the last acknowledged snapshot, across partitions; `ack_snapshot(token)`
/// makes it durable, otherwise it is carried again by the next snapshot.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub token: u64,
    pub parts: Vec<PartitionSnapshot>,
}

impl Engine {
    /// Copies out the open slots and checkpoints that changed since the last acknowledged
    /// snapshot (an unacknowledged snapshot's entries come again). Ordered with pushes: it
    /// reflects every trade pushed before the call.
    pub fn snapshot(&self) -> Result<Snapshot, EngineError> {
        let seq = self.snapshot_seq.fetch_add(1, Relaxed) + 1;
        let waits = (0..self.shared.len())
            .map(|p| Ok((p, self.send(p, |reply| Item::Snapshot { seq, reply })?)))
            .collect::<Result<Vec<_>, EngineError>>()?;
        let parts = waits
            .into_iter()
            .map(|(p, rx)| self.wait_reply(p, &rx))
            .collect::<Result<Vec<_>, EngineError>>()?;
        let mut pending = lock(&self.snapshots);
        pending.retain(|&t, _| t > seq.saturating_sub(16)); // superseded ones can no longer be acked
        pending.insert(seq, parts.clone());
        Ok(Snapshot { token: seq, parts })
    }

    /// The snapshot is durably stored: its dirty marks are cleared. False if it was superseded
    /// by a newer snapshot (whose entries include it) or is unknown.
    pub fn ack_snapshot(&self, token: u64) -> Result<bool, EngineError> {
        let Some(parts) = lock(&self.snapshots).remove(&token) else {
            return Ok(false);
        };
        let mut all = true;
        for part in &parts {
            let seq = part.seq;
            let ok = self.request(part.partition, |reply| Item::AckSnapshot { seq, reply })?;
            if ok {
                lock(&self.shared[part.partition].durable).absorb(part);
            }
            all &= ok;
        }
        Ok(all)
    }

    /// Puts stored state back (after a restart): open or flat slots by (symbol, interval
    /// index) and checkpoints by symbol. Symbols must have been added. Returns entries applied.
    ///
    /// With `hold`, each restored symbol then waits for the trades after its checkpoint (e.g.
    /// REST aggTrades `fromId`): its live trades are held and the clock closes none of its
    /// klines until [`Engine::backfill`] and [`Engine::feed_up`], so what was missed while the
    /// process was down comes out once, exact, as if it had never stopped.
    pub fn restore(
        &self,
        slots: &[(&str, u16, SlotValue)],
        checkpoints: &[(&str, i64)],
        hold: bool,
    ) -> Result<usize, EngineError> {
        let n = self.shared.len();
        let mut per_slots: Vec<Vec<(u32, u32, u16, SlotValue)>> = vec![Vec::new(); n];
        let mut per_ck: Vec<Vec<(u32, u32, i64)>> = vec![Vec::new(); n];
        let mut durable: Vec<PartitionSnapshot> = vec![PartitionSnapshot::default(); n];
        for &(symbol, interval, value) in slots {
            let r = self
                .registry
                .get(symbol)
                .ok_or_else(|| EngineError::UnknownSymbol(symbol.into()))?;
            per_slots[r.partition as usize].push((r.slot, r.generation, interval, value));
            let slot = output::SlotSnapshot { symbol: symbol.into(), interval, value };
            durable[r.partition as usize].slots.push(slot);
        }
        for &(symbol, last_id) in checkpoints {
            let r = self
                .registry
                .get(symbol)
                .ok_or_else(|| EngineError::UnknownSymbol(symbol.into()))?;
            per_ck[r.partition as usize].push((r.slot, r.generation, last_id));
            let ck = output::Checkpoint { symbol: symbol.into(), last_id };
            durable[r.partition as usize].checkpoints.push(ck);
        }
        // Restored state came from the store: it is durable (what a panic falls back to).
        for (p, d) in durable.iter().enumerate() {
            lock(&self.shared[p].durable).absorb(d);
        }
        let mut applied = 0;
        for (p, (slots, checkpoints)) in per_slots.into_iter().zip(per_ck).enumerate() {
            if slots.is_empty() && checkpoints.is_empty() {
                continue;
            }
            applied +=
                self.request(p, |reply| Item::Restore { slots, checkpoints, hold, reply })?;
        }
        Ok(applied)
    }

    fn target(&self, symbol: Option<&str>) -> Result<Vec<(usize, partition::Target)>, EngineError> {
        Ok(match symbol {
            Some(sym) => {
                let r = self.lookup(sym)?;
                vec![(r.partition as usize, Some((r.slot, r.generation)))]
            }
            None => (0..self.shared.len()).map(|p| (p, None)).collect(),
        })
    }

    /// Declares the feed of `symbol` (or of all symbols) down since `since`: klines that close
    /// meanwhile are marked gap and live trades wait for [`Engine::backfill`] and
    /// [`Engine::feed_up`], which re-emit the affected klines exactly (revision 1).
    ///
    /// With `hold`, nothing of the symbol closes at all until `feed_up`: no gap records, no
    /// revisions, for a catch-up expected to be short (history at start-up, a restart).
    pub fn feed_down(
        &self,
        symbol: Option<&str>,
        since: i64,
        hold: bool,
    ) -> Result<(), EngineError> {
        for (p, target) in self.target(symbol)? {
            self.enqueue_control(p, Item::FeedDown { target, since, hold })?;
        }
        Ok(())
    }

    /// Older trades of a symbol whose feed is down (e.g. REST aggTrades `fromId`), any order,
    /// duplicates allowed. False if the symbol is not in a declared gap.
    pub fn backfill(&self, symbol: &str, trades: Vec<Trade>) -> Result<bool, EngineError> {
        let r = self.lookup(symbol)?;
        self.request(r.partition as usize, |reply| Item::Backfill {
            slot: r.slot,
            generation: r.generation,
            trades,
            reply,
        })
    }

    /// The feed of `symbol` (or all) is back and the backfill is in: replay and re-emit. If ids
    /// are still missing, the symbol goes down again from there and the hole is reported on
    /// [`Engine::poll_gaps`] (`Holes::Ask`), or given up on (see [`Holes`]).
    pub fn feed_up(&self, symbol: Option<&str>, holes: Holes) -> Result<(), EngineError> {
        let now = self.cfg.clock.now();
        let waits = self
            .target(symbol)?
            .into_iter()
            .map(|(p, target)| {
                Ok((p, self.send(p, |reply| Item::FeedUp { target, now, holes, reply })?))
            })
            .collect::<Result<Vec<_>, EngineError>>()?;
        waits.into_iter().try_for_each(|(p, rx)| self.wait_reply(p, &rx))
    }

    /// The exchange halted `symbol` (status `BREAK`/`HALT`): it keeps its slots and state, its
    /// open klines close as usual, and no quiet period from now on is emitted as flat until
    /// [`Engine::resume`]. Binance writes no rows while trading is halted.
    pub fn halt(&self, symbol: &str) -> Result<(), EngineError> {
        let now = self.cfg.clock.now();
        self.halt_or_resume(symbol, |slot, generation, reply| Item::Halt {
            slot,
            generation,
            now,
            reply,
        })
    }

    /// `symbol` trades again (status `TRADING`): the halted span gets no rows; from the period
    /// holding the clock's now on, quiet periods are flat again and the next trade opens a
    /// kline. A trade timed after the halt resumes the symbol by itself; no effect on a
    /// symbol that is not halted.
    pub fn resume(&self, symbol: &str) -> Result<(), EngineError> {
        let now = self.cfg.clock.now();
        self.halt_or_resume(symbol, |slot, generation, reply| Item::Resume {
            slot,
            generation,
            now,
            reply,
        })
    }

    fn halt_or_resume(
        &self,
        symbol: &str,
        item: impl FnOnce(u32, u32, crossbeam_channel::Sender<()>) -> Item,
    ) -> Result<(), EngineError> {
        let r = self.lookup(symbol)?;
        self.request(r.partition as usize, |reply| item(r.slot, r.generation, reply))
    }
}
