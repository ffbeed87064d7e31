//! Canonical JSON (RFC 8785, JCS): the byte string that hashes and signatures cover.

use serde::Serialize;

use crate::error::AuditError;

/// Appends the JCS encoding of `value` to `out`.
pub fn write_canonical<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<(), AuditError> {
    serde_json_canonicalizer::to_writer(value, out)
        .map_err(|e| AuditError::Serialize(e.to_string()))
}

/// The JCS encoding of `value`.
pub fn to_canonical_vec<T: Serialize>(value: &T) -> Result<Vec<u8>, AuditError> {
    let mut out = Vec::with_capacity(512);
    write_canonical(value, &mut out)?;
    Ok(out)
}
