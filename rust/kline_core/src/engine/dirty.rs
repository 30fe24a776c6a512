//! Which slots changed since the last acknowledged snapshot: the double buffer of dirty lists.
//!
//! Invariant: a slot changed after the last acknowledged snapshot is in `active` or in
//! `flight` (or both). Marks leave `flight` only on `ack`; a snapshot that is never
//! acknowledged is re-marked by the next `take`, so its slots come again.

const ACTIVE: u8 = 1;
const FLIGHT: u8 = 2;

#[derive(Debug, Default, Clone)]
pub struct DirtySet {
    flags: Vec<u8>,
    active: Vec<u32>,
    flight: Vec<u32>,
    flight_seq: Option<u64>,
}

impl DirtySet {
    pub fn grow(&mut self, len: usize) {
        super::table::grow_to(&mut self.flags, len, 0);
    }

    /// O(1): flag the slot, listing it once.
    #[inline]
    pub fn mark(&mut self, i: usize) {
        if self.flags[i] & ACTIVE == 0 {
            self.flags[i] |= ACTIVE;
            if self.active.len() == self.active.capacity() {
                // A quarter more at a time: the lists stay near the slots they can hold.
                let more = (self.active.capacity() / 4).max(64);
                self.active.reserve_exact(more);
            }
            self.active.push(i as u32);
        }
    }

    /// Starts snapshot `seq`: an unacknowledged earlier snapshot is re-marked (it comes again),
    /// then the active list becomes the in-flight one. Returns the slots to copy out.
    pub fn take(&mut self, seq: u64) -> &[u32] {
        if self.flight_seq.take().is_some() {
            let lost = std::mem::take(&mut self.flight);
            for &i in &lost {
                self.flags[i as usize] &= !FLIGHT;
                self.mark(i as usize);
            }
        }
        std::mem::swap(&mut self.active, &mut self.flight);
        for &i in &self.flight {
            self.flags[i as usize] = (self.flags[i as usize] & !ACTIVE) | FLIGHT;
        }
        self.flight_seq = Some(seq);
        &self.flight
    }

    /// Snapshot `seq` is durable: its marks are cleared. False if `seq` is not in flight.
    pub fn ack(&mut self, seq: u64) -> bool {
        if self.flight_seq != Some(seq) {
            return false;
        }
        for &i in &self.flight {
            self.flags[i as usize] &= !FLIGHT;
        }
        self.flight.clear();
        self.flight_seq = None;
        true
    }

    /// Slots waiting for a snapshot or its acknowledgement.
    pub fn pending(&self) -> usize {
        self.flags.iter().filter(|&&f| f != 0).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[derive(Debug, Clone)]
    enum Op {
        Mark(usize),
        Take,
        Ack,
        AckStale,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..16).prop_map(Op::Mark),
            1 => Just(Op::Take),
            1 => Just(Op::Ack),
            1 => Just(Op::AckStale),
        ]
    }

    proptest! {
        /// Model: every slot marked after the last snapshot that was acknowledged (and which
        /// contained its latest mark) is still reported by some later snapshot.
        #[test]
        fn nothing_marked_is_lost_whatever_the_acks(ops in prop::collection::vec(op(), 0..200)) {
            let mut d = DirtySet::default();
            d.grow(16);
            let mut seq = 0u64;
            let mut owed: BTreeSet<usize> = BTreeSet::new(); // changed, not yet durably snapshotted
            let mut in_flight: BTreeSet<usize> = BTreeSet::new();
            let mut flight_seq = None;
            for op in ops {
                match op {
                    Op::Mark(i) => { d.mark(i); owed.insert(i); }
                    Op::Take => {
                        seq += 1;
                        let got: BTreeSet<usize> = d.take(seq).iter().map(|&i| i as usize).collect();
                        // Everything owed and not already covered by... must be in this snapshot.
                        prop_assert_eq!(&got, &owed);
                        in_flight = got;
                        flight_seq = Some(seq);
                    }
                    Op::Ack => {
                        if let Some(s) = flight_seq.take() {
                            prop_assert!(d.ack(s));
                            // Slots re-marked after the take stay owed.
                            let remarked: BTreeSet<usize> = d.active.iter().map(|&i| i as usize).collect();
                            owed = owed.difference(&in_flight).copied().chain(remarked.iter().copied()).collect();
                            in_flight.clear();
                        }
                    }
                    Op::AckStale => prop_assert!(!d.ack(seq + 100)),
                }
            }
        }
    }

    #[test]
    fn an_unacknowledged_snapshot_comes_again() {
        let mut d = DirtySet::default();
        d.grow(4);
        d.mark(1);
        d.mark(1);
        assert_eq!(d.take(1), &[1]);
        d.mark(2);
        // Snapshot 1 was lost: the next one carries slot 1 again, plus the new mark.
        let mut again = d.take(2).to_vec();
        again.sort();
        assert_eq!(again, vec![1, 2]);
        assert!(!d.ack(1));
        assert!(d.ack(2));
        assert_eq!(d.pending(), 0);
        assert!(d.take(3).is_empty());
    }
}
