//! Kernel events, read from the ring buffer, and the actions they become.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};

use aa_core::{Action, FileAccessMode, NetProto};
use aa_ebpf_common::{
    ARGS_LEN, Event, ExecEvent, FLAG_DIR, FLAG_ENFORCED, FLAG_SCRIPT, FLAG_TRUNCATED, FileKey,
    HEADER_LEN, KIND_CONNECT, KIND_EXEC, KIND_OPEN, KIND_SEND, KIND_TLS_READ, KIND_TLS_WRITE,
    KIND_UNLINK, KIND_WRITE, NAME_MAX, NAMES_LEN, PATH_LEN,
};

const O_WRONLY: u32 = 0o1;
const O_RDWR: u32 = 0o2;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;
const O_APPEND: u32 = 0o2000;

/// What the kernel saw, decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// A new image about to run (`sched_process_exec`).
    Exec {
        /// The file that runs, its path resolved by the kernel (symlinks, `/dev/fd/N`, dirfds
        /// and relative names resolved); for a `#!` script, the script's path.
        path: String,
        /// The arguments the new image gets (for a script, the interpreter's: the kernel
        /// rewrote them), up to `ARGS_LEN` bytes in all.
        argv: Vec<String>,
        /// The name the exec asked for, as the kernel kept it.
        requested: String,
        /// Device and inode of the file that runs (a script's interpreter).
        file: FileKey,
        /// The name asked for was a `#!` script.
        script: bool,
    },
    /// `open`, `openat`, `openat2`.
    Open {
        /// Path (absolute when it could be resolved against the process's cwd or dirfd).
        path: String,
        /// Opened for writing (write/read-write, create, truncate or append).
        write: bool,
    },
    /// `unlink`, `unlinkat`, `rmdir`, the old name of a rename.
    Unlink {
        /// Path.
        path: String,
    },
    /// `creat`, `truncate`, `mkdir(at)`, `link(at)`, `symlink(at)`, the new name of a rename.
    Write {
        /// Path.
        path: String,
    },
    /// A connect, or a datagram sent to an address, to an IPv4 or IPv6 destination (an
    /// IPv4-mapped IPv6 address is the IPv4 address).
    Connect {
        /// Destination.
        ip: IpAddr,
        /// Destination port.
        port: u16,
        /// The socket's protocol.
        proto: NetProto,
    },
    /// TLS plaintext written (`SSL_write`).
    TlsWrite {
        /// The first bytes.
        data: Vec<u8>,
        /// The full length of the write.
        len: u32,
    },
    /// TLS plaintext read (`SSL_read`).
    TlsRead {
        /// The first bytes.
        data: Vec<u8>,
        /// The full length of the read.
        len: u32,
    },
}

/// One decoded event.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelEvent {
    /// Process id.
    pub pid: u32,
    /// cgroup v2 id.
    pub cgroup_id: u64,
    /// The probe stopped it (exec killed, connect refused).
    pub enforced: bool,
    /// Rule index of the map entry that enforced.
    pub rule: u32,
    /// A path, argument or buffer was cut.
    pub truncated: bool,
    /// What happened.
    pub observed: Observed,
}

fn cstr(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned()
}

/// Decodes a ring buffer record; `None` for a record of the wrong size or an unknown kind.
pub fn decode(bytes: &[u8]) -> Option<KernelEvent> {
    let e = read_event(bytes)?;
    let flags = e.flags;
    let observed = match e.kind {
        KIND_EXEC => return decode_exec(bytes),
        KIND_OPEN => Observed::Open {
            path: path_of(bytes, &e),
            write: e.aux & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC | O_APPEND) != 0,
        },
        KIND_UNLINK => Observed::Unlink {
            path: path_of(bytes, &e),
        },
        KIND_WRITE => Observed::Write {
            path: path_of(bytes, &e),
        },
        KIND_CONNECT | KIND_SEND => {
            const SOCK_DGRAM: u32 = 2;
            let v6 = Ipv6Addr::from(e.addr);
            let ip = v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4);
            Observed::Connect {
                ip,
                port: u16::try_from(e.port).unwrap_or(0),
                proto: if e.aux == SOCK_DGRAM {
                    NetProto::Udp
                } else {
                    NetProto::Tcp
                },
            }
        }
        KIND_TLS_WRITE | KIND_TLS_READ => {
            let n = (e.aux as usize).min(e.data.len());
            let data = e.data.get(..n).unwrap_or_default().to_vec();
            if e.kind == KIND_TLS_WRITE {
                Observed::TlsWrite { data, len: e.port }
            } else {
                Observed::TlsRead { data, len: e.port }
            }
        }
        _ => return None,
    };
    Some(KernelEvent {
        pid: e.pid,
        cgroup_id: e.cgroup_id,
        enforced: flags & FLAG_ENFORCED != 0,
        rule: e.rule,
        truncated: flags & FLAG_TRUNCATED != 0,
        observed,
    })
}

fn decode_exec(bytes: &[u8]) -> Option<KernelEvent> {
    if bytes.len() < std::mem::size_of::<ExecEvent>() {
        return None;
    }
    let u32_at = |o: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(o..o + 4)?.try_into().ok()?))
    };
    let u64_at = |o: usize| -> Option<u64> {
        Some(u64::from_ne_bytes(bytes.get(o..o + 8)?.try_into().ok()?))
    };
    let (flags, pid, aux) = (u32_at(4)?, u32_at(8)?, u32_at(12)?);
    let used = (u32_at(28)? as usize).min(NAMES_LEN + NAME_MAX);
    let file = FileKey {
        dev: u64_at(32)?,
        ino: u64_at(40)?,
    };
    let requested = cstr(bytes.get(HEADER_LEN..HEADER_LEN + PATH_LEN)?);
    let names_at = HEADER_LEN + PATH_LEN;
    let names = bytes.get(names_at..names_at + NAMES_LEN + NAME_MAX)?;
    let args_at = names_at + NAMES_LEN + NAME_MAX;
    let args = bytes.get(args_at..args_at + (aux as usize).min(ARGS_LEN))?;
    let resolved = join_components(names.get(..used)?);
    let script = flags & FLAG_SCRIPT != 0;
    let argv: Vec<String> = args
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>();
    // The block ends with a NUL: the last piece is empty unless the block was cut.
    let argv = match argv.split_last() {
        Some((last, rest)) if last.is_empty() => rest.to_vec(),
        _ => argv,
    };
    Some(KernelEvent {
        pid,
        cgroup_id: u64_at(16)?,
        enforced: flags & FLAG_ENFORCED != 0,
        rule: u32_at(24)?,
        truncated: flags & FLAG_TRUNCATED != 0,
        observed: Observed::Exec {
            path: if script {
                resolve(pid, requested.clone())
            } else {
                resolved
            },
            argv,
            requested,
            file,
            script,
        },
    })
}

fn read_event(bytes: &[u8]) -> Option<Event> {
    let mut e = Event {
        kind: 0,
        flags: 0,
        pid: 0,
        aux: 0,
        cgroup_id: 0,
        rule: 0,
        port: 0,
        addr: [0; 16],
        path: [0; aa_ebpf_common::PATH_LEN],
        data: [0; aa_ebpf_common::DATA_LEN],
    };
    let u32_at = |o: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(bytes.get(o..o + 4)?.try_into().ok()?))
    };
    e.kind = u32_at(0)?;
    e.flags = u32_at(4)?;
    e.pid = u32_at(8)?;
    e.aux = u32_at(12)?;
    e.cgroup_id = u64::from_ne_bytes(bytes.get(16..24)?.try_into().ok()?);
    e.rule = u32_at(24)?;
    e.port = u32_at(28)?;
    e.addr.copy_from_slice(bytes.get(32..HEADER_LEN)?);
    let path_end = HEADER_LEN + aa_ebpf_common::PATH_LEN;
    e.path.copy_from_slice(bytes.get(HEADER_LEN..path_end)?);
    // Path events (open, unlink) end after the path; the others carry the data too.
    let short = matches!(e.kind, KIND_OPEN | KIND_UNLINK | KIND_WRITE);
    if !short {
        e.data
            .copy_from_slice(bytes.get(path_end..path_end + aa_ebpf_common::DATA_LEN)?);
    }
    Some(e)
}

/// The path of a path event: a relative one joined to the directory the kernel resolved
/// ([`FLAG_DIR`]), else to what `/proc` still says of the process.
fn path_of(bytes: &[u8], e: &Event) -> String {
    let path = cstr(&e.path);
    if e.flags & FLAG_DIR != 0 && !path.starts_with('/') {
        let at = HEADER_LEN + PATH_LEN;
        let used = (e.rule as usize).min(NAMES_LEN + NAME_MAX);
        if let Some(names) = bytes.get(at..at + used) {
            let dir = join_components(names);
            return if dir == "/" {
                format!("/{path}")
            } else {
                format!("{dir}/{path}")
            };
        }
    }
    resolve_at(e.pid, e.port as i32, path)
}

/// Components leaf first, NUL-separated, as the kernel walked them, to an absolute path.
fn join_components(names: &[u8]) -> String {
    let mut parts: Vec<String> = names
        .split(|b| *b == 0)
        .filter(|c| !c.is_empty())
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    parts.reverse();
    format!("/{}", parts.join("/"))
}

/// A relative path joined to the process's working directory, when it is still readable.
fn resolve(pid: u32, path: String) -> String {
    resolve_at(pid, aa_ebpf_common::AT_FDCWD, path)
}

/// A relative path joined to the directory `dfd` of the process ([`AT_FDCWD`]: its working
/// directory), when that is still readable.
///
/// [`AT_FDCWD`]: aa_ebpf_common::AT_FDCWD
fn resolve_at(pid: u32, dfd: i32, path: String) -> String {
    if path.starts_with('/') || path.is_empty() {
        return path;
    }
    let dir = if dfd == aa_ebpf_common::AT_FDCWD {
        format!("/proc/{pid}/cwd")
    } else {
        format!("/proc/{pid}/fd/{dfd}")
    };
    match std::fs::read_link(dir) {
        Ok(base) => base.join(&path).to_string_lossy().into_owned(),
        Err(_) => path,
    }
}

/// Turns events into actions; remembers the last HTTP host per process so an MCP body written
/// after its headers is attributed to its server.
#[derive(Debug, Default)]
pub struct Translator {
    hosts: HashMap<u32, (String, u16)>,
}

impl Translator {
    /// The action for `event`, or `None` when there is nothing to decide (TLS reads, TLS
    /// writes that are neither an HTTP/1 request nor a JSON-RPC body).
    pub fn action(&mut self, event: &KernelEvent) -> Option<Action> {
        self.raw_action(event).map(valid)
    }

    fn raw_action(&mut self, event: &KernelEvent) -> Option<Action> {
        Some(match &event.observed {
            Observed::Exec { path, argv, .. } => Action::ProcessExec {
                path: path.clone(),
                argv: argv.clone(),
            },
            Observed::Open { path, write } => Action::FileAccess {
                path: path.clone(),
                access: if *write {
                    FileAccessMode::Write
                } else {
                    FileAccessMode::Read
                },
            },
            Observed::Unlink { path } => Action::FileAccess {
                path: path.clone(),
                access: FileAccessMode::Unlink,
            },
            Observed::Write { path } => Action::FileAccess {
                path: path.clone(),
                access: FileAccessMode::Write,
            },
            Observed::Connect { ip, port, proto } => Action::NetConnect {
                addr: ip.to_string(),
                port: *port,
                proto: *proto,
            },
            Observed::TlsWrite { data, .. } => return self.tls_write(event.pid, data),
            Observed::TlsRead { .. } => return None,
        })
    }

    fn tls_write(&mut self, pid: u32, data: &[u8]) -> Option<Action> {
        if let Ok(req) = aa_inspect::http1::parse_request_head(data) {
            let host = req.host.clone().unwrap_or_else(|| "unknown".into());
            let port = req.port.unwrap_or(443);
            self.hosts.insert(pid, (host.clone(), port));
            if self.hosts.len() > 4096 {
                self.hosts.clear();
            }
            if let Some(mcp) = mcp_call(req.body(data), &host) {
                return Some(mcp);
            }
            return Some(Action::HttpRequest {
                method: req.method,
                scheme: "https".into(),
                host,
                port,
                path: req.target,
            });
        }
        let server = self.hosts.get(&pid).map_or("unknown", |(h, _)| h.as_str());
        mcp_call(data, server)
    }
}

/// What the kernel could not read is still recorded: an empty path (the user page was not
/// resident when the probe ran) becomes `<unreadable>`, control characters in names become `?`,
/// so the record is valid and the gateway does not refuse its batch.
fn valid(mut action: Action) -> Action {
    const UNREADABLE: &str = "<unreadable>";
    fn clean(s: &mut String) {
        if s.is_empty() {
            *s = "unknown".into();
        } else if s.chars().any(char::is_control) {
            *s = s
                .chars()
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
        }
    }
    match &mut action {
        Action::ProcessExec { path, .. } | Action::FileAccess { path, .. } if path.is_empty() => {
            *path = UNREADABLE.into();
        }
        Action::HttpRequest { method, host, .. } => {
            clean(method);
            clean(host);
        }
        Action::McpCall {
            server,
            method,
            tool,
            ..
        } => {
            clean(server);
            clean(method);
            if let Some(t) = tool {
                clean(t);
            }
        }
        _ => {}
    }
    action
}

/// The JSON-RPC request in a body an MCP client wrote (the first of a batch), as an
/// `mcp_call` to `server`. Leading bytes before the JSON (a chunk size) are skipped.
fn mcp_call(body: &[u8], server: &str) -> Option<Action> {
    let start = body.iter().position(|b| matches!(b, b'{' | b'['))?;
    let call = aa_inspect::mcp::parse_requests(body.get(start..)?)
        .ok()?
        .into_iter()
        .next()?;
    Some(Action::McpCall {
        server: server.to_owned(),
        method: call.method,
        tool: call.tool,
        args: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aa_ebpf_common::KIND_WRITE;

    #[test]
    fn an_http_request_in_tls_plaintext_becomes_an_http_request() {
        let mut t = Translator::default();
        let data = b"POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Length: 2\r\n\r\n{}";
        let ev = KernelEvent {
            pid: 7,
            cgroup_id: 1,
            enforced: false,
            rule: 0,
            truncated: false,
            observed: Observed::TlsWrite {
                data: data.to_vec(),
                len: 80,
            },
        };
        assert_eq!(
            t.action(&ev),
            Some(Action::HttpRequest {
                method: "POST".into(),
                scheme: "https".into(),
                host: "api.openai.com".into(),
                port: 443,
                path: "/v1/chat/completions".into(),
            })
        );
    }

    /// A TLS write of `data` by process `pid`.
    fn tls_write(pid: u32, data: &[u8]) -> KernelEvent {
        KernelEvent {
            pid,
            cgroup_id: 1,
            enforced: false,
            rule: 0,
            truncated: false,
            observed: Observed::TlsWrite {
                data: data.to_vec(),
                len: u32::try_from(data.len()).unwrap(),
            },
        }
    }

    #[test]
    fn an_mcp_body_written_after_its_headers_is_an_mcp_call_to_that_host() {
        let mut t = Translator::default();
        let head = b"POST /mcp HTTP/1.1\r\nHost: tools.internal:8443\r\n\r\n";
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","arguments":{}}}"#;
        let ev = |data: &[u8]| tls_write(9, data);
        assert!(matches!(
            t.action(&ev(head)),
            Some(Action::HttpRequest { port: 8443, .. })
        ));
        assert_eq!(
            t.action(&ev(body)),
            Some(Action::McpCall {
                server: "tools.internal".into(),
                method: "tools/call".into(),
                tool: Some("delete_repo".into()),
                args: None,
            })
        );
        assert_eq!(t.action(&ev(b"\x00\x00\x12\x04binary h2 frame")), None);
    }

    #[test]
    fn a_head_cut_at_the_window_still_names_its_host_and_a_batch_its_first_call() {
        let mut t = Translator::default();
        let ev = |data: &[u8]| tls_write(3, data);
        let mut head = b"POST /v1/messages HTTP/1.1\r\nHost: [::1]:8443\r\nX-Api-Key: ".to_vec();
        head.resize(aa_ebpf_common::DATA_LEN, b'k');
        assert_eq!(
            t.action(&ev(&head)),
            Some(Action::HttpRequest {
                method: "POST".into(),
                scheme: "https".into(),
                host: "::1".into(),
                port: 8443,
                path: "/v1/messages".into(),
            })
        );
        let batch = b"5a\r\n[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"rm\"}},{\"jsonrpc\":\"2.0\",\"method\":\"x\"}]";
        assert_eq!(
            t.action(&ev(batch)),
            Some(Action::McpCall {
                server: "::1".into(),
                method: "tools/call".into(),
                tool: Some("rm".into()),
                args: None,
            })
        );
        assert_eq!(
            t.action(&ev(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}")),
            None
        );
        assert_eq!(t.action(&ev(b"GET / HTTP/1.1")), None);
    }

    #[test]
    fn unreadable_paths_still_make_valid_records() {
        let mut t = Translator::default();
        let ev = KernelEvent {
            pid: 1,
            cgroup_id: 1,
            enforced: false,
            rule: 0,
            truncated: false,
            observed: Observed::Open {
                path: String::new(),
                write: true,
            },
        };
        let a = t.action(&ev).unwrap();
        assert!(a.validate().is_ok());
        assert!(matches!(a, Action::FileAccess { ref path, .. } if path == "<unreadable>"));
    }

    #[test]
    fn short_or_unknown_records_are_refused() {
        assert_eq!(decode(&[0u8; 10]), None);
        assert_eq!(decode(&vec![0u8; std::mem::size_of::<Event>()]), None);
    }

    #[test]
    fn a_path_event_is_shorter_and_decodes() {
        let mut rec = vec![0u8; std::mem::size_of::<aa_ebpf_common::PathEvent>()];
        rec[0..4].copy_from_slice(&KIND_OPEN.to_ne_bytes());
        rec[12..16].copy_from_slice(&0o101u32.to_ne_bytes()); // O_WRONLY|O_CREAT
        rec[HEADER_LEN..HEADER_LEN + 6].copy_from_slice(b"/tmp/x");
        let e = decode(&rec).unwrap();
        assert_eq!(
            e.observed,
            Observed::Open {
                path: "/tmp/x".into(),
                write: true
            }
        );
        rec[0..4].copy_from_slice(&KIND_EXEC.to_ne_bytes());
        assert_eq!(decode(&rec), None, "an exec record must carry its argv");
    }

    #[test]
    fn a_send_to_an_ipv4_mapped_address_is_udp_to_the_ipv4_address() {
        let mut rec = vec![0u8; std::mem::size_of::<Event>()];
        rec[0..4].copy_from_slice(&aa_ebpf_common::KIND_SEND.to_ne_bytes());
        rec[4..8].copy_from_slice(&aa_ebpf_common::FLAG_IPV6.to_ne_bytes());
        rec[12..16].copy_from_slice(&2u32.to_ne_bytes()); // SOCK_DGRAM
        rec[28..32].copy_from_slice(&53u32.to_ne_bytes());
        rec[32 + 10..HEADER_LEN].copy_from_slice(&[0xff, 0xff, 10, 0, 0, 1]);
        let mut t = Translator::default();
        assert_eq!(
            t.action(&decode(&rec).unwrap()),
            Some(Action::NetConnect {
                addr: "10.0.0.1".into(),
                port: 53,
                proto: NetProto::Udp
            })
        );
    }

    #[test]
    fn a_relative_path_is_joined_to_the_directory_the_kernel_resolved() {
        let mut rec = vec![0u8; std::mem::size_of::<aa_ebpf_common::DirPathEvent>()];
        rec[0..4].copy_from_slice(&KIND_WRITE.to_ne_bytes());
        rec[4..8].copy_from_slice(&FLAG_DIR.to_ne_bytes());
        rec[8..12].copy_from_slice(&u32::MAX.to_ne_bytes());
        rec[24..28].copy_from_slice(&9u32.to_ne_bytes());
        rec[28..32].copy_from_slice(&7u32.to_ne_bytes()); // dirfd 7
        rec[HEADER_LEN..HEADER_LEN + 5].copy_from_slice(b"a/b.c");
        let names = HEADER_LEN + PATH_LEN;
        rec[names..names + 9].copy_from_slice(b"sub\0work\0");
        let e = decode(&rec).unwrap();
        assert_eq!(
            e.observed,
            Observed::Write {
                path: "/work/sub/a/b.c".into()
            }
        );
    }

    #[test]
    fn an_exec_record_joins_the_kernels_components_root_first() {
        let mut rec = vec![0u8; std::mem::size_of::<ExecEvent>()];
        rec[0..4].copy_from_slice(&KIND_EXEC.to_ne_bytes());
        rec[8..12].copy_from_slice(&u32::MAX.to_ne_bytes());
        rec[28..32].copy_from_slice(&13u32.to_ne_bytes());
        rec[40..48].copy_from_slice(&77u64.to_ne_bytes());
        rec[HEADER_LEN..HEADER_LEN + 9].copy_from_slice(b"/dev/fd/3");
        let names = HEADER_LEN + PATH_LEN;
        rec[names..names + 13].copy_from_slice(b"true\0bin\0usr\0");
        let args = names + NAMES_LEN + NAME_MAX;
        rec[args..args + 8].copy_from_slice(b"true\0-x\0");
        rec[12..16].copy_from_slice(&8u32.to_ne_bytes());
        let e = decode(&rec).unwrap();
        let Observed::Exec {
            path,
            argv,
            requested,
            file,
            script,
        } = e.observed
        else {
            panic!("{e:?}")
        };
        assert_eq!(
            (path.as_str(), requested.as_str()),
            ("/usr/bin/true", "/dev/fd/3")
        );
        assert_eq!(argv, ["true", "-x"]);
        assert_eq!((file.ino, script), (77, false));
    }
}
