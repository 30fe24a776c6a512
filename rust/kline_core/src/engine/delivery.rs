//! Closed records handed to consumers in batches that stay pending until acknowledged.

use super::output::Record;
use std::collections::{BTreeMap, VecDeque};

/// Consumer-side bookkeeping: a batch leaves only on `ack`; `nack` puts it back in front.
#[derive(Debug, Default)]
pub struct Delivery {
    next_token: u64,
    pending: BTreeMap<u64, Vec<Record>>,
    redeliver: VecDeque<Record>,
    /// The rest of an outbox chunk bigger than what the last poll asked for.
    carry: VecDeque<Record>,
}

impl Delivery {
    /// Records to hand out first (returned by `nack`).
    pub fn take_redelivery(&mut self, max: usize, out: &mut Vec<Record>) {
        while out.len() < max {
            match self.redeliver.pop_front() {
                Some(r) => out.push(r),
                None => break,
            }
        }
    }

    /// Takes from the carried rest of a chunk, then from `next_chunk()`, up to `max` records;
    /// each emptied chunk goes to `spare` (back to its worker for reuse).
    pub fn take_new(
        &mut self,
        max: usize,
        out: &mut Vec<Record>,
        mut next_chunk: impl FnMut() -> Option<Vec<Record>>,
        mut spare: impl FnMut(Vec<Record>),
    ) {
        loop {
            while out.len() < max {
                match self.carry.pop_front() {
                    Some(r) => out.push(r),
                    None => break,
                }
            }
            if out.len() >= max {
                return;
            }
            match next_chunk() {
                Some(mut chunk) => {
                    self.carry.extend(chunk.drain(..));
                    spare(chunk);
                }
                None => return,
            }
        }
    }

    /// Registers a batch; its token is what `ack` takes. Empty batches get token 0.
    pub fn register(&mut self, batch: &[Record]) -> u64 {
        if batch.is_empty() {
            return 0;
        }
        self.next_token += 1;
        self.pending.insert(self.next_token, batch.to_vec());
        self.next_token
    }

    /// Forgets a delivered batch; false if the token is unknown (already acked or never given).
    pub fn ack(&mut self, token: u64) -> bool {
        self.pending.remove(&token).is_some()
    }

    /// Puts a delivered batch back to be handed out again, before anything newer.
    pub fn nack(&mut self, token: u64) -> bool {
        match self.pending.remove(&token) {
            Some(batch) => {
                for r in batch.into_iter().rev() {
                    self.redeliver.push_front(r);
                }
                true
            }
            None => false,
        }
    }

    /// Records delivered and not yet acknowledged, plus those waiting for redelivery.
    pub fn unacked(&self) -> usize {
        self.pending.values().map(Vec::len).sum::<usize>() + self.redeliver.len() + self.carry.len()
    }
}
