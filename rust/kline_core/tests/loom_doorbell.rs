//! Model check of the worker wake-up protocol: no interleaving loses a wake-up.
//!
//! `RUSTFLAGS="--cfg loom" cargo test -p kline_core --test loom_doorbell` (run by `make test`).
//! The ring is modelled by a counter published with the orderings crossbeam's queue gives
//! (release push, acquire pop); a lost wake-up would leave the worker parked for ever, which
//! loom reports as a deadlock.
#![cfg(loom)]

use kline_core::engine::doorbell::Doorbell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use std::time::Duration;

#[test]
fn a_pushed_item_always_wakes_the_worker() {
    loom::model(|| {
        let bell = Arc::new(Doorbell::new());
        let ring = Arc::new(AtomicUsize::new(0));
        let worker = {
            let (bell, ring) = (bell.clone(), ring.clone());
            loom::thread::spawn(move || {
                let mut taken = 0;
                while taken < 2 {
                    if ring.load(Ordering::Acquire) > taken {
                        taken += 1;
                        continue;
                    }
                    bell.sleep(|| ring.load(Ordering::Acquire) > taken, Duration::from_secs(1));
                }
            })
        };
        let thread = worker.thread().clone();
        bell.attach(move || thread.unpark());
        for _ in 0..2 {
            ring.fetch_add(1, Ordering::Release);
            bell.ring();
        }
        worker.join().unwrap();
    });
}
