//! `aasm audit verify | tail`

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aa_core::audit::{AuditLine, Verifier, VerifyOptions, load_or_create_key};
use serde_json::json;

use super::decide::summarize;
use crate::cli::AuditCommand;
use crate::output::{CliError, Printer, Status};

pub fn run(command: AuditCommand, out: &Printer) -> Result<Status, CliError> {
    match command {
        AuditCommand::Verify {
            file,
            public_key,
            key_file,
            strict,
        } => verify(&file, public_key, key_file, strict, out),
        AuditCommand::Tail {
            file,
            lines,
            all,
            follow,
        } => tail(&file, if all { usize::MAX } else { lines }, follow, out),
    }
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

fn print_line(line: &str, out: &Printer) {
    match serde_json::from_str::<AuditLine>(line) {
        Ok(AuditLine::Record(r)) => out.emit("record", &r, || {
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
        }),
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
    let mut reader = BufReader::new(f);
    let mut lines: Vec<String> = Vec::new();
    let mut pos = 0u64;
    let mut buf = String::new();
    loop {
        buf.clear();
        let n = reader.read_line(&mut buf).map_err(CliError::io(file))?;
        if n == 0 || !buf.ends_with('\n') {
            break;
        }
        pos += n as u64;
        lines.push(buf.trim_end().to_owned());
    }
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
        let mut reader = BufReader::new(f);
        loop {
            buf.clear();
            let n = reader.read_line(&mut buf).map_err(CliError::io(file))?;
            if n == 0 || !buf.ends_with('\n') {
                break;
            }
            pos += n as u64;
            print_line(buf.trim_end(), out);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
