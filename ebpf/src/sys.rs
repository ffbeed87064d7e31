//! The libc calls the layer needs, wrapped.
#![allow(unsafe_code)]

use std::os::fd::RawFd;

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Waits up to `timeout_ms` for `fd` to become readable (the ring buffer's epoll fd).
pub fn wait_readable(fd: RawFd, timeout_ms: i32) {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the duration of the call.
    unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
}

/// Makes `io_uring_setup`, `io_uring_enter` and `io_uring_register` fail with `EPERM` for this
/// process and its children (a seccomp filter): io_uring operations do not pass through the
/// syscall tracepoints the layer observes, so a governed agent must use the ordinary syscalls
/// (libuv, tokio and liburing users fall back to them when the ring cannot be created).
/// Returns the OS error when the filter cannot be installed.
pub fn refuse_io_uring() -> std::io::Result<()> {
    #[cfg(target_arch = "x86_64")]
    const NATIVE_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    const NATIVE_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const ALLOW: u32 = 0x7fff_0000; // SECCOMP_RET_ALLOW
    const EPERM: u32 = 0x0005_0000 | libc::EPERM as u32; // SECCOMP_RET_ERRNO | EPERM
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let nr = |n: libc::c_long| u32::try_from(n).unwrap_or(u32::MAX);
    let mut filter = [
        // seccomp_data.arch: another ABI's numbers are not these (allowed).
        op(LD_W_ABS, 0, 0, 4),
        op(JEQ_K, 0, 5, NATIVE_ARCH),
        // seccomp_data.nr
        op(LD_W_ABS, 0, 0, 0),
        op(JEQ_K, 2, 0, nr(libc::SYS_io_uring_setup)),
        op(JEQ_K, 1, 0, nr(libc::SYS_io_uring_enter)),
        op(JEQ_K, 0, 1, nr(libc::SYS_io_uring_register)),
        op(RET_K, 0, 0, EPERM),
        op(RET_K, 0, 0, ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    let install = || {
        // SAFETY: `prog` points at `filter`, both alive for the call; the kernel copies them.
        unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog,
            )
        }
    };
    if install() == 0 {
        return Ok(());
    }
    // Without CAP_SYS_ADMIN a filter needs no_new_privs (Landlock sets it too).
    // SAFETY: a prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 || install() != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
