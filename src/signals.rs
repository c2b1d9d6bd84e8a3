//! SIGINT and SIGTERM, counted from the first instruction of `main`: a signal that arrives
//! before the async runtime exists, or while the suites are still being read, is counted instead
//! of killing the process with the shell's 130 or 143. The handler only counts and writes one
//! byte to a pipe (both async-signal-safe); the runtime reads the pipe and publishes the count.
//!
//! What it does not do: decide what an interrupt means (the CLI and the session do).

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use tokio::io::AsyncReadExt;
use tokio::sync::watch;

/// Every SIGINT and SIGTERM since [`install`].
static COUNT: AtomicU64 = AtomicU64::new(0);
/// The pipe's write end, for the handler; -1 until installed.
static WAKE: AtomicI32 = AtomicI32::new(-1);
/// The pipe's read end, until [`watch`] takes it.
static READ: Mutex<Option<OwnedFd>> = Mutex::new(None);

/// The signals counted.
pub(crate) const SIGNALS: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// Count SIGINT and SIGTERM from now on, and unblock them. Call it first thing in `main`, before
/// any thread is started (threads inherit the signal mask); once is enough.
pub(crate) fn install() -> std::io::Result<()> {
    if WAKE.load(Ordering::SeqCst) >= 0 {
        return Ok(());
    }
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2(2) fills two file descriptors on success.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just made and are owned by nobody else.
    let read = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    *READ.lock().unwrap_or_else(|e| e.into_inner()) = Some(read);
    // The write end lives as long as the process: the handler may run at any moment.
    WAKE.store(fds[1], Ordering::SeqCst);
    for signal in SIGNALS {
        // SAFETY: `on_signal` is async-signal-safe: an atomic add and write(2).
        unsafe { signal_hook_registry::register(signal, on_signal) }?;
    }
    // A parent may have started us with them blocked (the mask survives exec): take them now,
    // and do not pass the block on to every Envoy and curl of the run. One that was sent while
    // blocked is delivered here, to the handler just installed.
    // SAFETY: sigemptyset/sigaddset on a local set, then pthread_sigmask on this thread, before
    // any other thread exists.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in SIGNALS {
            libc::sigaddset(&mut set, signal);
        }
        if libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

fn on_signal() {
    COUNT.fetch_add(1, Ordering::SeqCst);
    let fd = WAKE.load(Ordering::SeqCst);
    if fd >= 0 {
        // A full pipe already holds a wake-up; the count is what matters.
        // SAFETY: write(2) of one byte from a live buffer to our own pipe.
        let _ = unsafe { libc::write(fd, [1u8].as_ptr().cast(), 1) };
    }
}

/// The count so far.
pub(crate) fn count() -> u64 {
    COUNT.load(Ordering::SeqCst)
}

/// The count as it changes, inside a tokio runtime. Only the first call gets the pipe; later
/// ones fail.
pub(crate) fn watch() -> std::io::Result<watch::Receiver<u64>> {
    let read = READ
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .ok_or_else(|| {
            std::io::Error::other("the signal pipe is not installed, or already taken")
        })?;
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(read)?;
    let (sender, receiver) = watch::channel(count());
    tokio::spawn(async move {
        let mut buffer = [0u8; 64];
        // A signal after the channel's first value has its byte in the pipe, so none is missed.
        while let Ok(n) = pipe.read(&mut buffer).await
            && n > 0
        {
            sender.send_replace(count());
        }
    });
    Ok(receiver)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_is_counted_and_published() {
        install().unwrap();
        install().unwrap();
        let mut seen = watch().unwrap();
        assert!(watch().is_err(), "the pipe is handed out once");
        let before = *seen.borrow();
        // SAFETY: raise(3) a signal this process now handles.
        assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
        let after = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            seen.wait_for(|n| *n > before),
        )
        .await
        .expect("the signal was published")
        .map(|n| *n)
        .unwrap();
        assert_eq!(after, before + 1);
        assert_eq!(count(), after);
    }
}
