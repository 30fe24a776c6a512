//! The concurrency primitives of the engine's hand-written protocols, swapped for `loom`'s
//! under `--cfg loom` so the model checker can explore every interleaving.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, Ordering};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, Ordering};

/// Parks the current thread for at most `d` (loom: until unparked; a lost wake-up is then a
/// deadlock the checker reports).
pub(crate) fn park_timeout(d: std::time::Duration) {
    #[cfg(loom)]
    {
        let _ = d;
        loom::thread::park();
    }
    #[cfg(not(loom))]
    std::thread::park_timeout(d);
}

/// Locks `m`, ignoring poison: a panic while holding one of the engine's locks cannot leave
/// its data half-changed (each critical section is a single insert, take or swap), and a
/// caught worker panic must not make every later call panic too.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
