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

/// What a record is worth against a poll's budget, and how to cut one that is worth more.
pub struct Budget<'a> {
    pub size: &'a dyn Fn(&Record) -> usize,
    /// The first `n` (≥ 1) units of a record, and the rest if any.
    pub cut: &'a dyn Fn(Record, usize) -> (Record, Option<Record>),
}

impl Budget<'_> {
    /// Moves records from the front of `queue` into `out` while `room` lasts; a record worth
    /// more than what is left is cut and its rest stays in front. True when room is left.
    fn fill(&self, queue: &mut VecDeque<Record>, room: &mut usize, out: &mut Vec<Record>) -> bool {
        while *room > 0 {
            let Some(r) = queue.pop_front() else { return true };
            let size = (self.size)(&r);
            if size <= *room {
                *room -= size;
                out.push(r);
                continue;
            }
            let (head, rest) = (self.cut)(r, *room);
            *room = 0;
            out.push(head);
            if let Some(rest) = rest {
                queue.push_front(rest);
            }
        }
        false
    }
}

impl Delivery {
    /// Records worth up to `max` (see [`Budget`]): those to hand out again first, then the
    /// carried rest of a chunk, then `next_chunk()`s; each emptied chunk goes to `spare` (back
    /// to its worker for reuse).
    pub fn take(
        &mut self,
        max: usize,
        out: &mut Vec<Record>,
        budget: Budget<'_>,
        mut next_chunk: impl FnMut() -> Option<Vec<Record>>,
        mut spare: impl FnMut(Vec<Record>),
    ) {
        let mut room = max;
        if !budget.fill(&mut self.redeliver, &mut room, out) {
            return;
        }
        while budget.fill(&mut self.carry, &mut room, out) {
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
