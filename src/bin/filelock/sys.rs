//! The binary's system calls on Unix: `flock(2)` on a descriptor, handing a descriptor to
//! the command, and the signal dispositions of the wrapper. All its `unsafe` code is here.
//!
//! The binary owns its process, so it may set signal dispositions (the library never does).

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::ptr;

/// What a `flock(2)` call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Shared,
    Exclusive,
    Unlock,
}

/// One `flock(2)` call on `fd`, retried when interrupted: `Ok(true)` when done,
/// `Ok(false)` when `nonblock` and a conflicting lock is held elsewhere.
pub(crate) fn flock(fd: RawFd, operation: Operation, nonblock: bool) -> io::Result<bool> {
    let mut op = match operation {
        Operation::Shared => libc::LOCK_SH,
        Operation::Exclusive => libc::LOCK_EX,
        Operation::Unlock => libc::LOCK_UN,
    };
    if nonblock {
        op |= libc::LOCK_NB;
    }
    loop {
        // SAFETY: `flock` takes any integer: a number that is no open descriptor is EBADF.
        if unsafe { libc::flock(fd, op) } == 0 {
            return Ok(true);
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if nonblock => return Ok(false),
            _ => return Err(error),
        }
    }
}

/// Clears close-on-exec on `fd`, so that a program this process `exec`s inherits it.
/// Async-signal-safe (two `fcntl` calls, no allocation): usable between fork and exec.
pub(crate) fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: `fcntl(F_GETFD)` on any integer only reads its descriptor flags (EBADF if it
    // is no open descriptor).
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above; `F_SETFD` changes only that descriptor's close-on-exec flag.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes the program `command` starts inherit `fd`, which stays close-on-exec in this
/// process (the flag is cleared in the child, after the fork).
pub(crate) fn inherit(command: &mut Command, fd: RawFd) {
    // SAFETY: the hook runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: `clear_cloexec` makes two `fcntl` calls and
    // allocates nothing.
    unsafe {
        command.pre_exec(move || clear_cloexec(fd));
    }
}

extern "C" fn do_nothing(_signal: libc::c_int) {}

/// From now on this process survives SIGINT, SIGTERM and SIGHUP (it has to outlive its
/// command, whose lock it holds). They are caught by a handler that does nothing rather
/// than ignored, because `exec` resets a handler to the default but keeps an ignored
/// signal ignored: the command starts with the dispositions this process was given. A
/// signal that was already ignored stays so, for the command too.
pub(crate) fn outlive_signals() -> io::Result<()> {
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        let mut old = MaybeUninit::<libc::sigaction>::uninit();
        // SAFETY: a null new action only reads the current one into `old`, which points to
        // writable memory the size of a `struct sigaction`.
        if unsafe { libc::sigaction(signal, ptr::null(), old.as_mut_ptr()) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `sigaction` succeeded, so it filled `old`.
        if unsafe { old.assume_init() }.sa_sigaction == libc::SIG_IGN {
            continue;
        }
        // SAFETY: `struct sigaction` is plain data for which all zeroes is a valid value
        // (no handler, no flags); the mask is then emptied with `sigemptyset`.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = do_nothing as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `sa_mask` is a valid `sigset_t` owned by `action`.
        unsafe { libc::sigemptyset(&mut action.sa_mask) };
        // SAFETY: `action` is a complete `struct sigaction` whose handler is a plain
        // `extern "C"` function that touches nothing; the old action is not wanted.
        if unsafe { libc::sigaction(signal, &action, ptr::null_mut()) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}
