//! `#[repr(C)]` types shared by the kernel probes (`aa-ebpf-probes`) and the userspace loader
//! (`aa-ebpf`). Kept `no_std` and free of pointers so both sides agree byte for byte.
#![no_std]

/// Bytes of a path kept per event (longer paths are cut; `flags` carries [`FLAG_TRUNCATED`]).
pub const PATH_LEN: usize = 256;
/// Argument slots kept for an exec.
pub const ARGV_SLOTS: usize = 8;
/// Bytes kept per argument.
pub const ARG_LEN: usize = 64;
/// Bytes of TLS plaintext kept per `SSL_write` / `SSL_read`.
pub const DATA_LEN: usize = ARGV_SLOTS * ARG_LEN;

/// `execve` entered (path, argv).
pub const KIND_EXEC: u32 = 1;
/// `openat` entered (path, flags).
pub const KIND_OPEN: u32 = 2;
/// `unlinkat` entered (path).
pub const KIND_UNLINK: u32 = 3;
/// `connect` entered (family, address, port).
pub const KIND_CONNECT: u32 = 4;
/// `SSL_write` plaintext.
pub const KIND_TLS_WRITE: u32 = 5;
/// `SSL_read` plaintext (read on return).
pub const KIND_TLS_READ: u32 = 6;

/// The probe stopped the action in the kernel (exec killed, connect refused).
pub const FLAG_ENFORCED: u32 = 1;
/// The path or data was longer than what the event keeps.
pub const FLAG_TRUNCATED: u32 = 2;
/// An IPv6 address (else IPv4, in the first four bytes of `addr`).
pub const FLAG_IPV6: u32 = 4;

/// One observed action, as written to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Event {
    /// One of the `KIND_*` constants.
    pub kind: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Thread group id (the process id).
    pub pid: u32,
    /// `open` flags, or the argument count of an exec.
    pub aux: u32,
    /// cgroup v2 id of the acting task.
    pub cgroup_id: u64,
    /// Rule index of the map entry that enforced, when [`FLAG_ENFORCED`].
    pub rule: u32,
    /// Destination port (host order) for connects; plaintext length for TLS.
    pub port: u32,
    /// Destination address (IPv4 in the first four bytes, network order).
    pub addr: [u8; 16],
    /// NUL-terminated path (exec, open, unlink).
    pub path: [u8; PATH_LEN],
    /// Exec: `ARGV_SLOTS` NUL-terminated arguments of `ARG_LEN` bytes. TLS: plaintext.
    pub data: [u8; DATA_LEN],
}

/// The prefix of [`Event`] that path-only events (open, unlink) write: the header and the path,
/// reserved in the ring buffer in place (no data, no copy).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PathEvent {
    /// One of the `KIND_*` constants.
    pub kind: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Thread group id (the process id).
    pub pid: u32,
    /// `open` flags.
    pub aux: u32,
    /// cgroup v2 id of the acting task.
    pub cgroup_id: u64,
    /// Unused (0).
    pub rule: u32,
    /// Unused (0).
    pub port: u32,
    /// Unused (0).
    pub addr: [u8; 16],
    /// NUL-terminated path.
    pub path: [u8; PATH_LEN],
}

/// Bytes before `path` in both [`Event`] and [`PathEvent`].
pub const HEADER_LEN: usize = 48;

/// Key of the connect rule map: an address (IPv4 mapped into IPv6, all zero for any address)
/// and a port (0 for any port).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ConnectKey {
    /// IPv6 address bytes; IPv4 as `::ffff:a.b.c.d`; all zero = any.
    pub addr: [u8; 16],
    /// Port in host order; 0 = any.
    pub port: u32,
}

/// Value of the connect rule map.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConnectRule {
    /// [`VERDICT_DENY`] or [`VERDICT_ALLOW`].
    pub verdict: u32,
    /// Index into the loader's rule table (names the policy).
    pub rule: u32,
}

/// The rule refuses the connect.
pub const VERDICT_DENY: u32 = 1;
/// The rule lets the connect through (an exception to a broader deny).
pub const VERDICT_ALLOW: u32 = 2;

/// Key of the exec deny map: the executable path, NUL-padded.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PathKey {
    /// Path bytes, zero after the end.
    pub path: [u8; PATH_LEN],
}

/// Counters in the `STATS` per-CPU array.
pub const STAT_EVENTS: u32 = 0;
/// Events lost because the ring buffer was full.
pub const STAT_LOST: u32 = 1;
/// Execs killed.
pub const STAT_KILLED: u32 = 2;
/// Connects refused.
pub const STAT_REFUSED: u32 = 3;
/// Number of counters.
pub const STAT_COUNT: u32 = 4;

#[cfg(feature = "user")]
mod pod {
    // SAFETY: plain `repr(C)` data without padding-sensitive invariants or pointers.
    unsafe impl aya::Pod for super::Event {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ConnectKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ConnectRule {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::PathKey {}
}
