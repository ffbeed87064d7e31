//! Kernel programs of the Agent Assembly eBPF layer.
//!
//! Observation (syscall tracepoints and libssl uprobes) is scoped to the cgroups listed in
//! `CGROUPS` and writes [`Event`]s to the `EVENTS` ring buffer; a full ring buffer counts in
//! `STATS[STAT_LOST]`, never silently. Enforcement: an exec whose path is in `EXEC_DENY` is
//! killed with `bpf_send_signal(SIGKILL)` before the new image runs, and the `cgroup/connect4|6`
//! programs refuse connects the `CONNECT_RULES` map denies (the caller sees `EPERM`).
#![no_std]
#![no_main]

use aa_ebpf_common::{
    ConnectKey, ConnectRule, DirPathEvent, Event, ExecEvent, FileKey, Offsets, PathEvent, PathKey,
    RepeatKey, ARGS_LEN, AT_FDCWD, DATA_LEN, FLAG_DIR, FLAG_ENFORCED, FLAG_IPV6, FLAG_SCRIPT,
    FLAG_TRUNCATED, KIND_CONNECT, KIND_EXEC, KIND_OPEN, KIND_SEND, KIND_TLS_READ, KIND_TLS_WRITE,
    KIND_UNLINK, KIND_WRITE, NAMES_LEN, NAME_DEPTH, NAME_MAX, PATH_LEN, REPEAT_WINDOW_NS,
    STAT_COUNT, STAT_EVENTS, STAT_IO_URING, STAT_KILLED, STAT_LOST, STAT_REFUSED, STAT_REPEATS,
    VERDICT_DENY,
};
use aya_ebpf::helpers::generated::{self as gen, bpf_get_current_cgroup_id, bpf_send_signal};
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes,
    bpf_probe_read_user, bpf_probe_read_user_buf, bpf_probe_read_user_str_bytes,
};
use aya_ebpf::macros::{cgroup_sock_addr, map, raw_tracepoint, tracepoint, uprobe, uretprobe};
use aya_ebpf::maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf};
use aya_ebpf::programs::{
    ProbeContext, RawTracePointContext, RetProbeContext, SockAddrContext, TracePointContext,
};

const SIGKILL: u32 = 9;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// Offset of the first syscall argument in a `syscalls:sys_enter_*` record.
const ARG0: usize = 16;

#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(16 << 20, 0);
#[map]
static CGROUPS: HashMap<u64, u32> = HashMap::with_max_entries(1024, 0);
#[map]
static EXEC_DENY: HashMap<PathKey, u32> = HashMap::with_max_entries(16384, 0);
/// Executables to kill by identity (device + inode).
#[map]
static EXEC_DENY_ID: HashMap<FileKey, u32> = HashMap::with_max_entries(16384, 0);
/// Field offsets of this kernel's structures (from its BTF, written by the loader).
#[map]
static OFFSETS: Array<Offsets> = Array::with_max_entries(1, 0);
/// Read-only opens sent recently: (process, path hash) → time (ns).
#[map]
static REPEATS: LruHashMap<RepeatKey, u64> = LruHashMap::with_max_entries(65536, 0);
#[map]
static EXEC_SCRATCH: PerCpuArray<ExecEvent> = PerCpuArray::with_max_entries(1, 0);
#[map]
static CONNECT_RULES: HashMap<ConnectKey, ConnectRule> = HashMap::with_max_entries(70000, 0);
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_COUNT, 0);
#[map]
static SCRATCH: PerCpuArray<Event> = PerCpuArray::with_max_entries(1, 0);
#[map]
static SSL_READ_BUF: HashMap<u64, u64> = HashMap::with_max_entries(16384, 0);
/// `SSL_read_ex`: the buffer and where the byte count will be written.
#[map]
static SSL_READ_EX: HashMap<u64, [u64; 2]> = HashMap::with_max_entries(16384, 0);

#[inline(always)]
fn in_scope() -> bool {
    // SAFETY: a helper without arguments.
    let id = unsafe { bpf_get_current_cgroup_id() };
    // SAFETY: the value is only tested for presence.
    unsafe { CGROUPS.get(&id) }.is_some()
}

#[inline(always)]
fn count(stat: u32) {
    if let Some(p) = STATS.get_ptr_mut(stat) {
        // SAFETY: a per-CPU slot; no other writer on this CPU while the program runs.
        unsafe { *p += 1 };
    }
}

/// The per-CPU scratch event, its header filled in.
#[inline(always)]
fn begin(kind: u32) -> Option<&'static mut Event> {
    let p = SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU map value, exclusively ours for the duration of the program.
    let e = unsafe { &mut *p };
    e.kind = kind;
    e.flags = 0;
    e.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    e.aux = 0;
    // SAFETY: a helper without arguments.
    e.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    e.rule = 0;
    e.port = 0;
    Some(e)
}

/// Ring buffer flags: no wake-up per event (an irq_work per event costs microseconds); the
/// reader polls every few milliseconds, and is woken at once when a quarter of the ring is full.
#[inline(always)]
fn wakeup_flags() -> u64 {
    const BPF_RB_NO_WAKEUP: u64 = 1;
    const BPF_RB_FORCE_WAKEUP: u64 = 2;
    const BPF_RB_AVAIL_DATA: u64 = 0;
    const BPF_RB_RING_SIZE: u64 = 1;
    if EVENTS.query(BPF_RB_AVAIL_DATA) > EVENTS.query(BPF_RB_RING_SIZE) / 4 {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

#[inline(always)]
fn emit(e: &Event) {
    match EVENTS.output::<Event>(e, wakeup_flags()) {
        Ok(()) => count(STAT_EVENTS),
        Err(_) => count(STAT_LOST),
    }
}

#[inline(always)]
fn zero_path(path: &mut [u8; PATH_LEN]) {
    let p = path.as_mut_ptr() as *mut u64;
    for i in 0..PATH_LEN / 8 {
        // SAFETY: within `path`; volatile so the loop is not turned into a memset call.
        unsafe { core::ptr::write_volatile(p.add(i), 0) };
    }
}

/// `sched_process_exec(task, old_pid, bprm)`: the new image is loaded and about to run its
/// first instruction, whatever started it (`execve`, `execveat` with a path, a dirfd or
/// `AT_EMPTY_PATH`, a symlink, a hard link, a `#!` script). `bprm->file` is the file that runs
/// (a script's interpreter); it is decided by identity (device + inode, so a rename or another
/// name does not escape), and the name asked for (`bprm->filename`) by `EXEC_DENY`. A kill is
/// `SIGKILL` to the current task, delivered before it returns to user space.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn aa_exec(ctx: RawTracePointContext) -> i32 {
    if in_scope() {
        let _ = on_exec(&ctx);
    }
    0
}

/// Reads a kernel value at `base + off`.
#[inline(always)]
fn kread<T>(base: u64, off: u64) -> Result<T, i64> {
    // SAFETY: the helper checks the kernel address.
    unsafe { bpf_probe_read_kernel((base + off) as *const T) }.map_err(|e| e as i64)
}

fn on_exec(ctx: &RawTracePointContext) -> Result<(), i64> {
    let o = OFFSETS.get(0).ok_or(1i64)?;
    if o.ready == 0 {
        return Err(1);
    }
    let task: u64 = ctx.arg(0);
    let bprm: u64 = ctx.arg(2);
    let p = EXEC_SCRATCH.get_ptr_mut(0).ok_or(1i64)?;
    // SAFETY: per-CPU map value, exclusively ours for the duration of the program.
    let e = unsafe { &mut *p };
    e.kind = KIND_EXEC;
    e.flags = 0;
    e.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    e.aux = 0;
    // SAFETY: a helper without arguments.
    e.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    e.rule = 0;
    e.port = 0;
    let file: u64 = kread(bprm, o.bprm_file)?;
    let inode: u64 = kread(file, o.file_inode)?;
    let sb: u64 = kread(inode, o.inode_sb)?;
    let dev: u32 = kread(sb, o.sb_dev)?;
    e.file = FileKey {
        dev: dev as u64,
        ino: kread(inode, o.inode_ino)?,
    };
    let filename: u64 = kread(bprm, o.bprm_filename)?;
    let interp: u64 = kread(bprm, o.bprm_interp)?;
    if filename != interp {
        e.flags |= FLAG_SCRIPT;
    }
    zero_path(&mut e.path);
    // SAFETY: the helper checks the kernel address.
    match unsafe { bpf_probe_read_kernel_str_bytes(filename as *const u8, &mut e.path) } {
        Ok(s) if s.len() >= PATH_LEN - 1 => e.flags |= FLAG_TRUNCATED,
        Ok(_) => {}
        Err(_) => e.path[0] = 0,
    }
    // By identity first (the file that runs), then by the name asked for (a script's path).
    // SAFETY (both lookups): the value is copied out immediately.
    let rule = match unsafe { EXEC_DENY_ID.get(&e.file) } {
        Some(r) => Some(*r),
        None => unsafe { EXEC_DENY.get(&*(e.path.as_ptr() as *const PathKey)) }.copied(),
    };
    if let Some(rule) = rule {
        e.rule = rule;
        e.flags |= FLAG_ENFORCED;
        // SAFETY: signals the current task; delivered before it returns to user space, so the
        // new image never runs an instruction.
        unsafe { bpf_send_signal(SIGKILL) };
        count(STAT_KILLED);
    }
    walk_names(e, o, file)?;
    let mm: u64 = kread(task, o.task_mm)?;
    let start: u64 = kread(mm, o.mm_arg_start)?;
    let end: u64 = kread(mm, o.mm_arg_end)?;
    let len = end.wrapping_sub(start);
    let n = if len >= ARGS_LEN as u64 {
        if len > ARGS_LEN as u64 {
            e.flags |= FLAG_TRUNCATED;
        }
        ARGS_LEN
    } else {
        (len as usize) & (ARGS_LEN - 1)
    };
    if n > 0 {
        // SAFETY: at most `ARGS_LEN` bytes into `args`; the helper checks the user address
        // (the argument pages were just written by the kernel, so they are resident).
        let dst = unsafe { core::slice::from_raw_parts_mut(e.args.as_mut_ptr(), n) };
        if unsafe { bpf_probe_read_user_buf(start as *const u8, dst) }.is_ok() {
            e.aux = n as u32;
        }
    }
    match EVENTS.output::<ExecEvent>(e, wakeup_flags()) {
        Ok(()) => count(STAT_EVENTS),
        Err(_) => count(STAT_LOST),
    }
    Ok(())
}

/// The running file's path: see [`walk`].
#[inline(always)]
fn walk_names(e: &mut ExecEvent, o: &Offsets, file: u64) -> Result<(), i64> {
    let dentry: u64 = kread(file, o.file_path + o.path_dentry)?;
    let vfsmnt: u64 = kread(file, o.file_path + o.path_mnt)?;
    let names = e.names.as_mut_ptr();
    let (used, flags) = (&mut e.port as *mut u32, &mut e.flags as *mut u32);
    walk(o, dentry, vfsmnt, names, used, flags)
}

/// A path (`dentry` on `vfsmnt`) walked up through `d_parent` and across mounts to the root
/// of the mount tree: components leaf first into `names` (`NAMES_LEN + NAME_MAX` bytes),
/// NUL-separated; `used` gets the bytes used, `flags` [`FLAG_TRUNCATED`] when cut.
/// The offset lives in the event (map or ring memory), not in a register: the verifier then
/// sees the same state at every iteration whichever branch was taken, and prunes instead of
/// exploring 2^depth paths.
#[inline(always)]
fn walk(
    o: &Offsets,
    mut dentry: u64,
    mut vfsmnt: u64,
    names: *mut u8,
    used: *mut u32,
    flags: *mut u32,
) -> Result<(), i64> {
    let mut mnt = vfsmnt.wrapping_sub(o.mount_mnt);
    // SAFETY (all accesses to `used` and `flags`): fields of the caller's event.
    unsafe { core::ptr::write_volatile(used, 0) };
    let mut done = false;
    for _ in 0..NAME_DEPTH {
        let root: u64 = kread(vfsmnt, o.vfsmount_root)?;
        if dentry == root {
            let parent: u64 = kread(mnt, o.mount_parent)?;
            if parent == mnt {
                done = true;
                break;
            }
            dentry = kread(mnt, o.mount_mountpoint)?;
            mnt = parent;
            vfsmnt = mnt + o.mount_mnt;
            continue;
        }
        let parent: u64 = kread(dentry, o.dentry_parent)?;
        if parent == dentry {
            done = true;
            break;
        }
        let name: u64 = kread(dentry, o.dentry_name)?;
        let at = unsafe { core::ptr::read_volatile(used) } as usize;
        if at >= NAMES_LEN {
            break;
        }
        let off = at & (NAMES_LEN - 1);
        // SAFETY: `off + NAME_MAX` is within `names` (`NAMES_LEN + NAME_MAX` bytes); the helper
        // checks the kernel address and always NUL-terminates.
        let n = unsafe {
            gen::bpf_probe_read_kernel_str(
                names.add(off) as *mut core::ffi::c_void,
                NAME_MAX as u32,
                name as *const core::ffi::c_void,
            )
        };
        if n <= 0 {
            return Err(1);
        }
        if n as usize >= NAME_MAX {
            unsafe { *flags |= FLAG_TRUNCATED };
        }
        unsafe { core::ptr::write_volatile(used, (off + n as usize) as u32) };
        dentry = parent;
    }
    if !done {
        unsafe { *flags |= FLAG_TRUNCATED };
    }
    Ok(())
}

/// The directory a relative path of the current task is resolved against: its working
/// directory ([`AT_FDCWD`]) or the file open as `dfd`: `(dentry, vfsmount)`.
#[inline(always)]
fn base_dir(o: &Offsets, dfd: i32) -> Result<(u64, u64), i64> {
    // SAFETY: a helper without arguments.
    let task = unsafe { gen::bpf_get_current_task() };
    if dfd == AT_FDCWD {
        let fs: u64 = kread(task, o.task_fs)?;
        return Ok((
            kread(fs, o.fs_pwd + o.path_dentry)?,
            kread(fs, o.fs_pwd + o.path_mnt)?,
        ));
    }
    let files: u64 = kread(task, o.task_files)?;
    let fdt: u64 = kread(files, o.files_fdt)?;
    let max: u32 = kread(fdt, o.fdt_max_fds)?;
    if dfd < 0 || dfd as u32 >= max {
        return Err(1);
    }
    let fds: u64 = kread(fdt, o.fdt_fd)?;
    let file: u64 = kread(fds, 8 * dfd as u64)?;
    if file == 0 {
        return Err(1);
    }
    Ok((
        kread(file, o.file_path + o.path_dentry)?,
        kread(file, o.file_path + o.path_mnt)?,
    ))
}

/// `io_uring:io_uring_create`: a ring made in a watched cgroup is counted (its operations do
/// not pass through the syscall tracepoints).
#[tracepoint]
pub fn aa_io_uring(_ctx: TracePointContext) -> u32 {
    if in_scope() {
        count(STAT_IO_URING);
    }
    0
}

/// Argument `i` of a `syscalls:sys_enter_*` record.
#[inline(always)]
fn sys_arg<T>(ctx: &TracePointContext, i: usize) -> Result<T, i64> {
    // SAFETY: every `sys_enter_*` record holds its arguments as 8-byte slots from `ARG0`.
    unsafe { ctx.read_at(ARG0 + 8 * i) }.map_err(i64::from)
}

/// The dirfd argument `i` (an `int` in an 8-byte slot).
#[inline(always)]
fn sys_dfd(ctx: &TracePointContext, i: usize) -> Result<i32, i64> {
    Ok(sys_arg::<u64>(ctx, i)? as i32)
}

macro_rules! path_program {
    ($(#[$doc:meta])* $name:ident, |$ctx:ident| $body:expr) => {
        $(#[$doc])*
        #[tracepoint]
        pub fn $name($ctx: TracePointContext) -> u32 {
            if in_scope() {
                let _ = (|| -> Result<(), i64> { $body })();
            }
            0
        }
    };
}

path_program!(
    /// `open(path, flags, mode)`.
    aa_open, |ctx| path_event(KIND_OPEN, sys_arg(&ctx, 0)?, AT_FDCWD, sys_arg::<u64>(&ctx, 1)? as u32)
);
path_program!(
    /// `openat(dfd, path, flags, mode)`.
    aa_openat, |ctx| path_event(KIND_OPEN, sys_arg(&ctx, 1)?, sys_dfd(&ctx, 0)?, sys_arg::<u64>(&ctx, 2)? as u32)
);
path_program!(
    /// `openat2(dfd, path, how, size)`: the flags are the first field of `struct open_how`.
    aa_openat2, |ctx| {
        let how: *const u64 = sys_arg(&ctx, 2)?;
        // SAFETY: the helper checks the user address.
        let flags = unsafe { bpf_probe_read_user(how) }.unwrap_or(0);
        path_event(KIND_OPEN, sys_arg(&ctx, 1)?, sys_dfd(&ctx, 0)?, flags as u32)
    }
);
path_program!(
    /// `creat(path, mode)`, `truncate(path, len)`, `mkdir(path, mode)`: the name is written.
    aa_write_path, |ctx| path_event(KIND_WRITE, sys_arg(&ctx, 0)?, AT_FDCWD, 0)
);
path_program!(
    /// `mkdirat(dfd, path, mode)`.
    aa_mkdirat, |ctx| path_event(KIND_WRITE, sys_arg(&ctx, 1)?, sys_dfd(&ctx, 0)?, 0)
);
path_program!(
    /// `unlink(path)`, `rmdir(path)`.
    aa_unlink, |ctx| path_event(KIND_UNLINK, sys_arg(&ctx, 0)?, AT_FDCWD, 0)
);
path_program!(
    /// `unlinkat(dfd, path, flags)`.
    aa_unlinkat, |ctx| path_event(KIND_UNLINK, sys_arg(&ctx, 1)?, sys_dfd(&ctx, 0)?, 0)
);
path_program!(
    /// `rename(old, new)`: the old name goes away, the new one is written.
    aa_rename, |ctx| {
        path_event(KIND_UNLINK, sys_arg(&ctx, 0)?, AT_FDCWD, 0)?;
        path_event(KIND_WRITE, sys_arg(&ctx, 1)?, AT_FDCWD, 0)
    }
);
path_program!(
    /// `renameat(olddfd, old, newdfd, new)` and `renameat2(…, flags)`.
    aa_renameat, |ctx| {
        path_event(KIND_UNLINK, sys_arg(&ctx, 1)?, sys_dfd(&ctx, 0)?, 0)?;
        path_event(KIND_WRITE, sys_arg(&ctx, 3)?, sys_dfd(&ctx, 2)?, 0)
    }
);
path_program!(
    /// `link(old, new)`, `symlink(target, new)`: the new name is written.
    aa_link, |ctx| path_event(KIND_WRITE, sys_arg(&ctx, 1)?, AT_FDCWD, 0)
);
path_program!(
    /// `linkat(olddfd, old, newdfd, new, flags)`.
    aa_linkat, |ctx| path_event(KIND_WRITE, sys_arg(&ctx, 3)?, sys_dfd(&ctx, 2)?, 0)
);
path_program!(
    /// `symlinkat(target, newdfd, new)`.
    aa_symlinkat, |ctx| path_event(KIND_WRITE, sys_arg(&ctx, 2)?, sys_dfd(&ctx, 1)?, 0)
);

/// A [`PathEvent`] reserved in the ring buffer and filled in place (the most frequent event; no
/// scratch copy): `kind`, the user path, the dirfd it is relative to, the open flags. A
/// relative path is sent as a [`DirPathEvent`] with its directory resolved here, while the
/// task is still there to ask.
#[inline(always)]
fn path_event(kind: u32, path: *const u8, dfd: i32, flags: u32) -> Result<(), i64> {
    // SAFETY: the helper checks the user address.
    let first: u8 = unsafe { bpf_probe_read_user(path) }.unwrap_or(b'/');
    if first == b'/' && kind == KIND_OPEN && flags & WRITE_FLAGS == 0 {
        // A read-only open is checked against the recent ones before the ring buffer is
        // touched: a repeat costs a path read, a hash and a lookup, no reserve and discard.
        let scratch = SCRATCH.get_ptr_mut(0).ok_or(1i64)?;
        // SAFETY: per-CPU map value, exclusively ours for the duration of the program.
        let seen = unsafe { &mut (*scratch).path };
        // SAFETY: the helper checks the user address.
        let len = match unsafe { bpf_probe_read_user_str_bytes(path, seen) } {
            Ok(s) => s.len(),
            Err(_) => 0,
        };
        let key = repeat_key(seen, len, (bpf_get_current_pid_tgid() >> 32) as u32);
        // SAFETY: a helper without arguments.
        let now = unsafe { gen::bpf_ktime_get_ns() };
        if len > 0 && repeated(&key, now) {
            count(STAT_REPEATS);
            return Ok(());
        }
        let Some(mut entry) = EVENTS.reserve::<PathEvent>(0) else {
            count(STAT_LOST);
            return Ok(());
        };
        // SAFETY: the reserved record is ours until submitted; every field is written.
        let e = unsafe { &mut *entry.as_mut_ptr() };
        header(e, kind, dfd, flags);
        copy_path(seen, &mut e.path);
        if len == 0 {
            e.path[0] = 0;
        } else if len >= PATH_LEN - 1 {
            e.flags |= FLAG_TRUNCATED;
        }
        entry.submit(wakeup_flags());
        count(STAT_EVENTS);
        // Remembered only once sent: a lost open does not make its repeats disappear too.
        if len > 0 {
            let _ = REPEATS.insert(&key, &now, 0);
        }
        return Ok(());
    }
    if first == b'/' {
        let Some(mut entry) = EVENTS.reserve::<PathEvent>(0) else {
            count(STAT_LOST);
            return Ok(());
        };
        // SAFETY: the reserved record is ours until submitted; every field is written.
        let e = unsafe { &mut *entry.as_mut_ptr() };
        fill_path(e, kind, path, dfd, flags);
        entry.submit(wakeup_flags());
        count(STAT_EVENTS);
        return Ok(());
    }
    let Some(mut entry) = EVENTS.reserve::<DirPathEvent>(0) else {
        count(STAT_LOST);
        return Ok(());
    };
    // SAFETY: the reserved record is ours until submitted; every field is written.
    let e = unsafe { &mut *entry.as_mut_ptr() };
    fill_path(&mut e.head, kind, path, dfd, flags);
    let dir = match OFFSETS.get(0) {
        Some(o) if o.ready != 0 => base_dir(o, dfd).ok().map(|(d, m)| (o, d, m)),
        _ => None,
    };
    if let Some((o, dentry, vfsmnt)) = dir {
        let (used, fl) = (&mut e.head.rule as *mut u32, &mut e.head.flags as *mut u32);
        if walk(o, dentry, vfsmnt, e.names.as_mut_ptr(), used, fl).is_ok() {
            e.head.flags |= FLAG_DIR;
        }
    }
    entry.submit(wakeup_flags());
    count(STAT_EVENTS);
    Ok(())
}

/// Open flags that make an open a write (`O_WRONLY`, `O_RDWR`, `O_CREAT`, `O_TRUNC`,
/// `O_APPEND`): such opens are always sent.
const WRITE_FLAGS: u32 = 0o1 | 0o2 | 0o100 | 0o1000 | 0o2000;

/// The key of a read-only open in [`REPEATS`]: the process and a hash of the path.
#[inline(always)]
fn repeat_key(path: &[u8; PATH_LEN], len: usize, pid: u32) -> RepeatKey {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let words = path.as_ptr() as *const u64;
    for i in 0..PATH_LEN / 8 {
        if i * 8 >= len {
            break;
        }
        // SAFETY: word `i` of `path`, within bounds.
        let mut w = unsafe { core::ptr::read_unaligned(words.add(i)) };
        let left = len - i * 8;
        if left < 8 {
            // Bytes past the end (after the NUL) are whatever the buffer held: masked out.
            w &= (1u64 << ((left as u64 & 7) * 8)) - 1;
        }
        hash = (hash ^ w).wrapping_mul(0x0100_0000_01b3);
    }
    RepeatKey {
        pid,
        len: len as u32,
        hash,
    }
}

/// The same process opened the same absolute path read-only within [`REPEAT_WINDOW_NS`] and
/// that open was sent: this one is counted, not sent (a policy sees the first of each window).
#[inline(always)]
fn repeated(key: &RepeatKey, now: u64) -> bool {
    // SAFETY: the value is copied out immediately.
    unsafe { REPEATS.get(key) }.is_some_and(|t| now.wrapping_sub(*t) < REPEAT_WINDOW_NS)
}

/// Fills in a path event's header (everything but the path).
#[inline(always)]
fn header(e: &mut PathEvent, kind: u32, dfd: i32, flags: u32) {
    e.kind = kind;
    e.flags = 0;
    e.pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    e.aux = flags;
    // SAFETY: a helper without arguments.
    e.cgroup_id = unsafe { bpf_get_current_cgroup_id() };
    e.rule = 0;
    e.port = dfd as u32;
    e.addr = [0; 16];
}

/// Copies a path buffer word by word (a `memcpy` call is not available to BPF programs).
#[inline(always)]
fn copy_path(from: &[u8; PATH_LEN], to: &mut [u8; PATH_LEN]) {
    let (src, dst) = (from.as_ptr() as *const u64, to.as_mut_ptr() as *mut u64);
    for i in 0..PATH_LEN / 8 {
        // SAFETY: word `i` of both buffers, within bounds; volatile keeps it a word loop.
        unsafe { core::ptr::write_volatile(dst.add(i), core::ptr::read_unaligned(src.add(i))) };
    }
}

/// Fills in a path event; returns the path's length (without the NUL).
#[inline(always)]
fn fill_path(e: &mut PathEvent, kind: u32, path: *const u8, dfd: i32, flags: u32) -> usize {
    header(e, kind, dfd, flags);
    // SAFETY: the helper checks the user address.
    match unsafe { bpf_probe_read_user_str_bytes(path, &mut e.path) } {
        Ok(s) => {
            if s.len() >= PATH_LEN - 1 {
                e.flags |= FLAG_TRUNCATED;
            }
            s.len()
        }
        Err(_) => {
            e.path[0] = 0;
            0
        }
    }
}

#[inline(always)]
fn mapped(v4: [u8; 4]) -> [u8; 16] {
    [
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, v4[0], v4[1], v4[2], v4[3],
    ]
}

/// The first rule that matches: exact address and port, the address on any port, the port on
/// any address, then any address and any port; verdict 0 when none does. (A plain value, not an
/// `Option`: LLVM leaves the payload register of `None` undefined and the verifier refuses to
/// read it.)
#[inline(always)]
fn verdict(addr: &[u8; 16], port: u32) -> ConnectRule {
    let mut key = ConnectKey { addr: *addr, port };
    // SAFETY (all four lookups): the value is copied out immediately.
    if let Some(r) = unsafe { CONNECT_RULES.get(&key) } {
        return *r;
    }
    key.port = 0;
    if let Some(r) = unsafe { CONNECT_RULES.get(&key) } {
        return *r;
    }
    key.addr = [0; 16];
    key.port = port;
    if let Some(r) = unsafe { CONNECT_RULES.get(&key) } {
        return *r;
    }
    key.port = 0;
    match unsafe { CONNECT_RULES.get(&key) } {
        Some(r) => *r,
        None => ConnectRule {
            verdict: 0,
            rule: 0,
        },
    }
}

/// Decides a connect (`KIND_CONNECT`) or an addressed send (`KIND_SEND`) seen by a cgroup
/// program, records it with the socket type (the real protocol) and returns the verdict
/// (0 = refused with `EPERM`). IPv4-mapped IPv6 addresses are keyed, decided and recorded as the
/// IPv4 address they are.
#[inline(always)]
fn sock_addr(ctx: &SockAddrContext, kind: u32, addr: [u8; 16], v6: bool) -> i32 {
    // SAFETY: the context of a cgroup/connect|sendmsg program.
    let (port, sock_type) = unsafe { ((*ctx.sock_addr).user_port, (*ctx.sock_addr).type_) };
    let port = u16::from_be(port as u16) as u32;
    let rule = verdict(&addr, port);
    let denied = rule.verdict == VERDICT_DENY;
    if let Some(e) = begin(kind) {
        e.port = port;
        e.addr = addr;
        e.aux = sock_type;
        let is_mapped = addr[..10] == [0u8; 10] && addr[10] == 0xff && addr[11] == 0xff;
        if v6 && !is_mapped {
            e.flags |= FLAG_IPV6;
        }
        if denied {
            e.flags |= FLAG_ENFORCED;
            e.rule = rule.rule;
        }
        emit(e);
    }
    if denied {
        count(STAT_REFUSED);
        0
    } else {
        1
    }
}

#[inline(always)]
fn ip6(ctx: &SockAddrContext) -> [u8; 16] {
    // SAFETY: the context of a cgroup/*6 program.
    let ip = unsafe { (*ctx.sock_addr).user_ip6 };
    let mut addr = [0u8; 16];
    let mut i = 0;
    while i < 4 {
        let w = ip[i].to_ne_bytes();
        addr[i * 4] = w[0];
        addr[i * 4 + 1] = w[1];
        addr[i * 4 + 2] = w[2];
        addr[i * 4 + 3] = w[3];
        i += 1;
    }
    addr
}

#[inline(always)]
fn ip4(ctx: &SockAddrContext) -> [u8; 16] {
    // SAFETY: the context of a cgroup/*4 program.
    mapped(unsafe { (*ctx.sock_addr).user_ip4 }.to_ne_bytes())
}

#[cgroup_sock_addr(connect4)]
pub fn aa_connect4(ctx: SockAddrContext) -> i32 {
    sock_addr(&ctx, KIND_CONNECT, ip4(&ctx), false)
}

#[cgroup_sock_addr(connect6)]
pub fn aa_connect6(ctx: SockAddrContext) -> i32 {
    sock_addr(&ctx, KIND_CONNECT, ip6(&ctx), true)
}

/// `sendto` / `sendmsg` with an address on an unconnected (UDP) socket.
#[cgroup_sock_addr(sendmsg4)]
pub fn aa_sendmsg4(ctx: SockAddrContext) -> i32 {
    sock_addr(&ctx, KIND_SEND, ip4(&ctx), false)
}

/// As [`aa_sendmsg4`], for IPv6 sockets (and IPv4-mapped destinations on them).
#[cgroup_sock_addr(sendmsg6)]
pub fn aa_sendmsg6(ctx: SockAddrContext) -> i32 {
    sock_addr(&ctx, KIND_SEND, ip6(&ctx), true)
}

/// Copies up to `DATA_LEN` bytes of plaintext.
#[inline(always)]
fn tls_event(kind: u32, buf: *const u8, len: u64) {
    if buf.is_null() || len == 0 {
        return;
    }
    let Some(e) = begin(kind) else { return };
    e.port = len as u32;
    let data = e.data.as_mut_ptr();
    let n = if len >= DATA_LEN as u64 {
        DATA_LEN
    } else {
        (len as usize) & (DATA_LEN - 1)
    };
    if n < len as usize {
        e.flags |= FLAG_TRUNCATED;
    }
    // SAFETY: at most `DATA_LEN` bytes into `data`; the helper checks the user address.
    let dst = unsafe { core::slice::from_raw_parts_mut(data, n) };
    if unsafe { bpf_probe_read_user_buf(buf, dst) }.is_err() {
        return;
    }
    e.aux = n as u32;
    emit(e);
}

#[uprobe]
pub fn aa_ssl_write(ctx: ProbeContext) -> u32 {
    if in_scope() {
        let buf: Option<*const u8> = ctx.arg(1);
        let len: Option<u64> = ctx.arg(2);
        if let (Some(buf), Some(len)) = (buf, len) {
            tls_event(KIND_TLS_WRITE, buf, len & 0xffff_ffff);
        }
    }
    0
}

#[uprobe]
pub fn aa_ssl_read(ctx: ProbeContext) -> u32 {
    if in_scope() {
        if let Some(buf) = ctx.arg::<u64>(1) {
            let _ = SSL_READ_BUF.insert(&bpf_get_current_pid_tgid(), &buf, 0);
        }
    }
    0
}

#[uretprobe]
pub fn aa_ssl_read_ret(ctx: RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out immediately.
    let Some(buf) = (unsafe { SSL_READ_BUF.get(&id) }).copied() else {
        return 0;
    };
    let _ = SSL_READ_BUF.remove(&id);
    let ret: i32 = ctx.ret();
    if ret > 0 {
        tls_event(KIND_TLS_READ, buf as *const u8, ret as u64);
    }
    0
}

/// `SSL_read_ex(ssl, buf, num, &readbytes)` (OpenSSL 3; what Python's `ssl` calls).
#[uprobe]
pub fn aa_ssl_read_ex(ctx: ProbeContext) -> u32 {
    if in_scope() {
        if let (Some(buf), Some(count)) = (ctx.arg::<u64>(1), ctx.arg::<u64>(3)) {
            let _ = SSL_READ_EX.insert(&bpf_get_current_pid_tgid(), &[buf, count], 0);
        }
    }
    0
}

#[uretprobe]
pub fn aa_ssl_read_ex_ret(ctx: RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    // SAFETY: the value is copied out immediately.
    let Some([buf, count]) = (unsafe { SSL_READ_EX.get(&id) }).copied() else {
        return 0;
    };
    let _ = SSL_READ_EX.remove(&id);
    let ok: i32 = ctx.ret();
    if ok == 1 {
        // SAFETY: the helper checks the user address.
        if let Ok(n) = unsafe { bpf_probe_read_user(count as *const u64) } {
            tls_event(KIND_TLS_READ, buf as *const u8, n);
        }
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
