//! Keeping secrets out of places other processes and crash handlers can read.
//!
//! Both binaries call these at the very start of `main`:
//!
//! - [`take_env_secret`] reads `CHATTER_ACCESS_CODE` or `CHATTER_ROOM_PASSWORD` once and then
//!   removes it from the process's environment. Removing a variable (`unsetenv`) only drops the
//!   pointer to it: the string itself stays in the block the kernel wrote at exec, and that
//!   block is what `/proc/PID/environ` shows for the life of the process. So on Linux the value
//!   is first overwritten in place with zeros, then the variable is removed.
//! - [`disable_core_dumps`] sets `RLIMIT_CORE` to 0 and, on Linux, marks the process
//!   non-dumpable, which also makes its `/proc/PID/` files (memory, environment) readable by
//!   root only, and keeps debuggers of the same user from attaching.

use crate::secret::Secret;

/// Reads the environment variable `name` into a [`Secret`], wipes its value where the process
/// keeps it and removes it; `None` when it is unset (or not UTF-8, which no secret we read is).
///
/// # Safety
///
/// Changes the process environment, so no other thread may run (and possibly read the
/// environment) while it does: call it at the start of `main`, before any runtime, logger or
/// other thread is started.
pub unsafe fn take_env_secret(name: &str) -> Option<Secret> {
    let value = std::env::var(name).ok().map(Secret::new);
    #[cfg(target_os = "linux")]
    // SAFETY: the caller guarantees that no other thread touches the environment meanwhile.
    unsafe {
        wipe_env_value(name);
    }
    // SAFETY: as above; no other thread runs.
    unsafe { std::env::remove_var(name) };
    value
}

/// Overwrites with zeros the value of every `name=value` string of the C environment.
///
/// # Safety
///
/// No other thread may read or change the environment meanwhile.
#[cfg(target_os = "linux")]
unsafe fn wipe_env_value(name: &str) {
    use zeroize::Zeroize;
    unsafe extern "C" {
        // The C library's environment array, null-terminated, declared by POSIX.
        static mut environ: *mut *mut std::ffi::c_char;
    }
    let prefix_len = name.len() + 1;
    // SAFETY: `environ` is a valid null-terminated array of pointers to NUL-terminated strings
    // while nobody changes the environment (the caller's guarantee). Each string is writable
    // memory: the block the kernel placed on the stack at exec, or a copy `setenv` allocated.
    // Only bytes before the terminating NUL are overwritten, so every string stays valid.
    unsafe {
        let mut entry = environ;
        if entry.is_null() {
            return;
        }
        while !(*entry).is_null() {
            let bytes = std::ffi::CStr::from_ptr(*entry).to_bytes();
            let len = bytes.len();
            if len >= prefix_len && bytes.starts_with(name.as_bytes()) && bytes[name.len()] == b'='
            {
                let value = std::slice::from_raw_parts_mut(
                    (*entry).cast::<u8>().add(prefix_len),
                    len - prefix_len,
                );
                value.zeroize();
            }
            entry = entry.add(1);
        }
    }
}

/// Turns core dumps off: a dump would write the access code and every key to disk.
///
/// On Linux, not being dumpable is what matters (the kernel then writes no core, or one
/// only root can read, as `fs.suid_dumpable` says), so only its failure is an error: a sandbox
/// may forbid `setrlimit` (systemd's `SystemCallFilter=~@resources` does; the unit sets
/// `LimitCORE=0` itself). Elsewhere the core size limit is all there is.
#[cfg(unix)]
pub fn disable_core_dumps() -> std::io::Result<()> {
    let limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit reads the struct we pass and nothing else.
    let limited = unsafe { libc::setrlimit(libc::RLIMIT_CORE, &limit) } == 0;
    #[cfg(target_os = "linux")]
    {
        let _ = limited;
        // SAFETY: PR_SET_DUMPABLE takes one integer argument and touches no memory of ours.
        if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    if limited { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}

/// Core dumps are a Unix matter; elsewhere there is nothing to turn off.
#[cfg(not(unix))]
pub fn disable_core_dumps() -> std::io::Result<()> {
    Ok(())
}
