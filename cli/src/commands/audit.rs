//! `aasm audit verify | tail`

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aa_core::AuditRecord;
use aa_core::audit::{AuditLine, Verifier, VerifyOptions, load_or_create_key};
use aa_sdk_client::GatewayClient;
use serde_json::json;

use super::decide::summarize;
use crate::cli::{AuditCommand, OptionalRemote};
use crate::output::{CliError, Printer, Status};

pub fn run(command: AuditCommand, out: &Printer) -> Result<Status, CliError> {
    match command {
        AuditCommand::Verify {
            file,
            remote,
            public_key,
            key_file,
            strict,
        } => match gateway(&remote)? {
            Some(gw) => verify_remote(&gw, public_key, strict, out),
            None => verify(&required(file)?, public_key, key_file, strict, out),
        },
        AuditCommand::Tail {
            file,
            remote,
            lines,
            all,
            follow,
        } => {
            let last = if all { usize::MAX } else { lines };
            match gateway(&remote)? {
                Some(gw) => tail_remote(&gw, last, follow, out),
                None => tail(&required(file)?, last, follow, out),
            }
        }
        AuditCommand::Export { remote, out: path } => {
            export(&remote.client()?, path.as_deref(), out)
        }
    }
}

fn gateway(remote: &OptionalRemote) -> Result<Option<GatewayClient>, CliError> {
    Ok(remote.remote()?.map(|r| r.client()).transpose()?)
}

fn verify(
    file: &Path,
    public_key: Option<String>,
    key_file: Option<PathBuf>,
    strict: bool,
    out: &Printer,
) -> Result<Status, CliError> {
    let default_key = PathBuf::from(format!("{}.key", file.display()));
    let key_file = key_file.or_else(|| default_key.exists().then_some(default_key));
    let public_key = match (public_key, key_file) {
        (Some(k), _) => Some(k),
        // Reading only: never create a key here.
        (None, Some(path)) if path.exists() => {
            Some(load_or_create_key(&path)?.public_key().to_owned())
        }
        (None, Some(path)) => {
            return Err(CliError::Input(format!(
                "key file {} does not exist",
                path.display()
            )));
        }
        (None, None) => None,
    };
    let bytes = std::fs::read(file).map_err(CliError::io(file))?;
    let report = Verifier::verify_bytes(&bytes, VerifyOptions { public_key, strict });
    out.emit("verify", &report, || match &report.failure {
        None => format!(
            "ok: {} records, {} signed checkpoint(s), sealed through seq {} of {}{}",
            report.records,
            report.checkpoints,
            report.sealed_seq,
            report.last_seq,
            report
                .public_key
                .as_ref()
                .map(|k| format!(", key {}…", k.get(..16).unwrap_or(k)))
                .unwrap_or_default()
        ),
        Some(f) => format!(
            "BROKEN at seq {}: {:?}: {} (line {}); {} records verified before it",
            f.seq, f.kind, f.detail, f.line, report.records
        ),
    });
    if report.ok && report.sealed_seq < report.last_seq {
        out.note(&format!(
            "warning: records {}..{} follow the last checkpoint (unsealed; --strict fails on this)",
            report.sealed_seq + 1,
            report.last_seq
        ));
    }
    Ok(if report.ok {
        Status::Success
    } else {
        Status::Failed
    })
}

fn print_record(r: &AuditRecord, out: &Printer) {
    out.emit("record", r, || {
        format!(
            "{:>6} {} {:<14} {:<5} {:<5} {:<16} {}",
            r.seq,
            r.ts,
            r.agent_id,
            r.layer.as_str(),
            r.decision.effect.as_str(),
            r.decision.reason.as_str(),
            summarize(&r.action)
        )
    });
}

fn print_line(line: &str, out: &Printer) {
    match serde_json::from_str::<AuditLine>(line) {
        Ok(AuditLine::Record(r)) => print_record(&r, out),
        Ok(AuditLine::Checkpoint { checkpoint }) => out.emit("checkpoint", &checkpoint, || {
            format!(
                "{:>6} {} checkpoint signed by {}…",
                checkpoint.seq,
                checkpoint.ts,
                checkpoint.public_key.get(..16).unwrap_or_default()
            )
        }),
        Err(e) => out.emit(
            "malformed",
            &json!({ "line": line, "message": e.to_string() }),
            || format!("  (malformed line: {e})"),
        ),
    }
}

fn tail(file: &Path, last: usize, follow: bool, out: &Printer) -> Result<Status, CliError> {
    let f = std::fs::File::open(file).map_err(CliError::io(file))?;
    let mut lines: Vec<String> = Vec::new();
    let mut pos = 0u64;
    read_complete_lines(BufReader::new(f), &mut pos, |l| lines.push(l.to_owned()))
        .map_err(CliError::io(file))?;
    let start = lines.len().saturating_sub(last);
    for l in lines.get(start..).unwrap_or_default() {
        print_line(l, out);
    }
    if !follow {
        return Ok(Status::Success);
    }
    // Follow: poll for appended complete lines; a partial line waits for its newline.
    loop {
        let mut f = std::fs::File::open(file).map_err(CliError::io(file))?;
        let len = f.metadata().map_err(CliError::io(file))?.len();
        if len < pos {
            out.note("note: the file shrank; starting over");
            pos = 0;
        }
        f.seek(SeekFrom::Start(pos)).map_err(CliError::io(file))?;
        read_complete_lines(BufReader::new(f), &mut pos, |l| print_line(l, out))
            .map_err(CliError::io(file))?;
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Calls `f` with each complete line (newline trimmed) and advances `pos` past it; a partial
/// last line is left for later.
fn read_complete_lines(
    mut reader: impl BufRead,
    pos: &mut u64,
    mut f: impl FnMut(&str),
) -> std::io::Result<()> {
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = reader.read_line(&mut buf)?;
        if n == 0 || !buf.ends_with('\n') {
            return Ok(());
        }
        *pos += n as u64;
        f(buf.trim_end());
    }
}

fn required(file: Option<PathBuf>) -> Result<PathBuf, CliError> {
    file.ok_or_else(|| CliError::Input("give an audit FILE or --gateway URL".into()))
}

/// Every record of the gateway, page by page, oldest first.
fn for_each_record(
    gw: &GatewayClient,
    mut f: impl FnMut(AuditRecord) -> Result<(), CliError>,
) -> Result<(), CliError> {
    for record in gw.records() {
        f(record?)?;
    }
    Ok(())
}

fn verify_remote(
    gw: &GatewayClient,
    public_key: Option<String>,
    strict: bool,
    out: &Printer,
) -> Result<Status, CliError> {
    let key = match public_key {
        Some(k) => k,
        None => {
            let k = gw.public_key()?;
            out.note("note: checking against the key the gateway reports; pass --public-key to pin a known one");
            k.public_key
        }
    };
    let mut v = Verifier::new(VerifyOptions {
        public_key: Some(key),
        strict,
    })
    .with_checkpoints(gw.checkpoints()?);
    for_each_record(gw, |r| {
        v.push_record(&r);
        Ok(())
    })?;
    let report = v.finish();
    out.emit("verify", &report, || match &report.failure {
        None => format!(
            "ok: {} records, {} signed checkpoint(s), sealed through seq {} of {}",
            report.records, report.checkpoints, report.sealed_seq, report.last_seq
        ),
        Some(f) => format!(
            "BROKEN at seq {}: {:?}: {}; {} records verified before it",
            f.seq, f.kind, f.detail, report.records
        ),
    });
    Ok(if report.ok {
        Status::Success
    } else {
        Status::Failed
    })
}

fn export(gw: &GatewayClient, path: Option<&Path>, out: &Printer) -> Result<Status, CliError> {
    use std::io::Write as _;
    let checkpoints = gw.checkpoints()?;
    let mut cps = checkpoints.iter().peekable();
    let mut sink: Box<dyn std::io::Write> = match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).map_err(CliError::io(p))?,
        )),
        None => Box::new(std::io::stdout().lock()),
    };
    let io = |e: std::io::Error| CliError::Io {
        path: "export".into(),
        source: e,
    };
    let mut line = Vec::new();
    let mut count = 0u64;
    let write = |sink: &mut Box<dyn std::io::Write>, bytes: &[u8]| {
        sink.write_all(bytes)
            .and_then(|()| sink.write_all(b"\n"))
            .map_err(io)
    };
    for_each_record(gw, |r| {
        line.clear();
        aa_core::write_canonical(&r, &mut line)?;
        write(&mut sink, &line)?;
        count += 1;
        while let Some(cp) = cps.next_if(|cp| cp.seq <= r.seq) {
            line.clear();
            aa_core::write_canonical(&serde_json::json!({ "checkpoint": cp }), &mut line)?;
            write(&mut sink, &line)?;
        }
        Ok(())
    })?;
    // Checkpoints past the last record are exported too: a verifier then names the missing tail.
    for cp in cps {
        line.clear();
        aa_core::write_canonical(&serde_json::json!({ "checkpoint": cp }), &mut line)?;
        write(&mut sink, &line)?;
    }
    sink.flush().map_err(io)?;
    drop(sink);
    if let Some(p) = path {
        out.note(&format!(
            "exported {count} records to {}; check it with `aasm audit verify {} --public-key …`",
            p.display(),
            p.display()
        ));
    }
    Ok(Status::Success)
}

fn tail_remote(
    gw: &GatewayClient,
    last: usize,
    follow: bool,
    out: &Printer,
) -> Result<Status, CliError> {
    let mut recent: std::collections::VecDeque<AuditRecord> = std::collections::VecDeque::new();
    let mut head = 0;
    for_each_record(gw, |r| {
        head = r.seq;
        if last > 0 {
            if recent.len() == last {
                recent.pop_front();
            }
            recent.push_back(r);
        }
        Ok(())
    })?;
    for r in &recent {
        print_record(r, out);
    }
    if !follow {
        return Ok(Status::Success);
    }
    for record in gw.audit_stream(head)? {
        print_record(&record?, out);
    }
    Ok(Status::Success)
}
