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

/// A new image is about to run (`sched_process_exec`, whatever syscall started it): an
/// [`ExecEvent`] with the file's identity, its resolved path and the argv the kernel built.
pub const KIND_EXEC: u32 = 1;
/// A file opened (`open`, `openat`, `openat2`, `creat`): path, flags in `aux`, dirfd in `port`.
pub const KIND_OPEN: u32 = 2;
/// A name removed (`unlink`, `unlinkat`, `rmdir`, the old name of a rename): path, dirfd.
pub const KIND_UNLINK: u32 = 3;
/// A connect or an addressed send seen by `cgroup/connect4|6` / `cgroup/sendmsg4|6`: address,
/// port, the socket type in `aux` (`SOCK_STREAM` / `SOCK_DGRAM`).
pub const KIND_CONNECT: u32 = 4;
/// `SSL_write` plaintext.
pub const KIND_TLS_WRITE: u32 = 5;
/// `SSL_read` plaintext (read on return).
pub const KIND_TLS_READ: u32 = 6;
/// A name created or changed (`mkdir`, `link`, `symlink`, `truncate`, the new name of a rename):
/// path, dirfd.
pub const KIND_WRITE: u32 = 7;
/// A datagram sent to an address (`sendto` / `sendmsg` on an unconnected socket), as
/// [`KIND_CONNECT`].
pub const KIND_SEND: u32 = 8;

/// The probe stopped the action in the kernel (exec killed, connect refused).
pub const FLAG_ENFORCED: u32 = 1;
/// The path or data was longer than what the event keeps.
pub const FLAG_TRUNCATED: u32 = 2;
/// An IPv6 address (else IPv4, in the first four bytes of `addr`).
pub const FLAG_IPV6: u32 = 4;
/// Exec: the file named was a script (`#!`); `path` is the script, the identity and `names`
/// are its interpreter's.
pub const FLAG_SCRIPT: u32 = 8;

/// `dirfd` of a path relative to the working directory.
pub const AT_FDCWD: i32 = -100;

/// Bytes of the resolved path components kept per exec (leaf first, NUL-separated).
pub const NAMES_LEN: usize = 512;
/// Longest component kept (longer ones are cut; the event is marked truncated).
pub const NAME_MAX: usize = 64;
/// Components walked up from the executable to the root.
pub const NAME_DEPTH: usize = 24;
/// Bytes of the new image's argument block kept (NUL-separated, as on its stack).
pub const ARGS_LEN: usize = 512;

/// An exec, as written to the ring buffer by the `sched_process_exec` program.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecEvent {
    /// [`KIND_EXEC`].
    pub kind: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Thread group id.
    pub pid: u32,
    /// Bytes of `args` filled.
    pub aux: u32,
    /// cgroup v2 id of the acting task.
    pub cgroup_id: u64,
    /// Rule index of the map entry that enforced, when [`FLAG_ENFORCED`].
    pub rule: u32,
    /// Bytes of `names` used.
    pub port: u32,
    /// Identity of the file that runs: device (kernel `dev_t`), then inode number.
    pub file: FileKey,
    /// The name the exec was asked for, as the kernel kept it (`/dev/fd/N` for `fexecve`).
    pub path: [u8; PATH_LEN],
    /// The components of the running file's path, leaf first, each NUL-terminated, up to the
    /// root of the mount tree (slack of [`NAME_MAX`] after [`NAMES_LEN`] for the last read).
    pub names: [u8; NAMES_LEN + NAME_MAX],
    /// The argument block of the new image (`mm->arg_start..arg_end`).
    pub args: [u8; ARGS_LEN],
}

/// A file's identity: the kernel's `dev_t` of its super block and its inode number.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub struct FileKey {
    /// `inode->i_sb->s_dev` (major << 20 | minor).
    pub dev: u64,
    /// `inode->i_ino`.
    pub ino: u64,
}

/// Offsets of the kernel structure fields the exec program reads, found by the loader in the
/// running kernel's BTF (`/sys/kernel/btf/vmlinux`) and written to the `OFFSETS` map.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct Offsets {
    /// `linux_binprm.file`.
    pub bprm_file: u64,
    /// `linux_binprm.filename`.
    pub bprm_filename: u64,
    /// `linux_binprm.interp`.
    pub bprm_interp: u64,
    /// `file.f_inode`.
    pub file_inode: u64,
    /// `file.f_path` (then `path.mnt` at `path_mnt`, `path.dentry` at `path_dentry`).
    pub file_path: u64,
    /// `path.mnt`.
    pub path_mnt: u64,
    /// `path.dentry`.
    pub path_dentry: u64,
    /// `inode.i_ino`.
    pub inode_ino: u64,
    /// `inode.i_sb`.
    pub inode_sb: u64,
    /// `super_block.s_dev`.
    pub sb_dev: u64,
    /// `dentry.d_parent`.
    pub dentry_parent: u64,
    /// `dentry.d_name` plus `qstr.name`.
    pub dentry_name: u64,
    /// `vfsmount.mnt_root`.
    pub vfsmount_root: u64,
    /// `mount.mnt` (the embedded `vfsmount`).
    pub mount_mnt: u64,
    /// `mount.mnt_parent`.
    pub mount_parent: u64,
    /// `mount.mnt_mountpoint`.
    pub mount_mountpoint: u64,
    /// `task_struct.mm`.
    pub task_mm: u64,
    /// `mm_struct.arg_start`.
    pub mm_arg_start: u64,
    /// `mm_struct.arg_end`.
    pub mm_arg_end: u64,
    /// `task_struct.fs`.
    pub task_fs: u64,
    /// `fs_struct.pwd`.
    pub fs_pwd: u64,
    /// `task_struct.files`.
    pub task_files: u64,
    /// `files_struct.fdt`.
    pub files_fdt: u64,
    /// `fdtable.fd`.
    pub fdt_fd: u64,
    /// `fdtable.max_fds`.
    pub fdt_max_fds: u64,
    /// Non-zero once the loader filled the table in.
    pub ready: u64,
}

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
    /// `open` flags (0 for the other kinds).
    pub aux: u32,
    /// cgroup v2 id of the acting task.
    pub cgroup_id: u64,
    /// Bytes of [`DirPathEvent::names`] used, with [`FLAG_DIR`] (else 0).
    pub rule: u32,
    /// The directory fd a relative path is resolved against ([`AT_FDCWD`] as `u32`).
    pub port: u32,
    /// Unused (0).
    pub addr: [u8; 16],
    /// NUL-terminated path.
    pub path: [u8; PATH_LEN],
}

/// A [`PathEvent`] whose path is relative, with the directory it is relative to (the working
/// directory or the dirfd) resolved in the kernel: its components leaf first in `names`,
/// NUL-separated, `head.rule` bytes of them ([`FLAG_DIR`]).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DirPathEvent {
    /// The path event.
    pub head: PathEvent,
    /// The directory's components, leaf first.
    pub names: [u8; NAMES_LEN + NAME_MAX],
}

/// A path event carries the directory of its relative path ([`DirPathEvent`]).
pub const FLAG_DIR: u32 = 16;

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

/// Key of the exec deny map by name: the name asked for (or a script's path), NUL-padded.
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
/// Connects and sends refused.
pub const STAT_REFUSED: u32 = 3;
/// io_uring rings created in a watched cgroup (their operations are not observed; the launcher
/// refuses io_uring, so a ring here was made by a process that joined the cgroup another way).
pub const STAT_IO_URING: u32 = 4;
/// Read-only opens not sent: the same process opened the same path read-only within
/// [`REPEAT_WINDOW_NS`] (counted here instead).
pub const STAT_REPEATS: u32 = 5;
/// Number of counters.
pub const STAT_COUNT: u32 = 6;

/// Window in which a repeated read-only open of the same path by the same process is counted,
/// not sent.
pub const REPEAT_WINDOW_NS: u64 = 1_000_000_000;

/// Key of the recent read-only opens map: process and a hash of the path.
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct RepeatKey {
    /// Thread group id.
    pub pid: u32,
    /// Path length.
    pub len: u32,
    /// FNV-1a over the path's 8-byte words.
    pub hash: u64,
}

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
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FileKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Offsets {}
}
