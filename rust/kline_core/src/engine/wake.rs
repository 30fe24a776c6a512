//! A file descriptor that becomes readable when closed klines are waiting, for
//! `loop.add_reader` in Python: no polling loop.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

/// A Linux eventfd. `notify` is cheap when nobody waits (one atomic load).
#[derive(Debug)]
pub struct Notifier {
    fd: i32,
    /// Set by a consumer before it sleeps on the fd; cleared by the first notify.
    armed: AtomicBool,
}

impl Notifier {
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd takes no pointers; a negative result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Notifier { fd, armed: AtomicBool::new(false) })
    }

    pub fn fd(&self) -> i32 {
        self.fd
    }

    /// The consumer is about to wait on the fd: the next `notify` will write to it.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Makes the fd readable if a consumer armed it.
    pub fn notify(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.signal();
        }
    }

    /// Makes the fd readable unconditionally.
    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own fd; EAGAIN (counter full) is fine.
        unsafe { libc::write(self.fd, (&one as *const u64).cast(), 8) };
    }

    /// Resets the fd to not readable.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads at most 8 bytes into a live u64; EAGAIN (nothing pending) is fine.
        unsafe { libc::read(self.fd, (&mut v as *mut u64).cast(), 8) };
    }
}

impl Drop for Notifier {
    fn drop(&mut self) {
        // SAFETY: the fd is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}
