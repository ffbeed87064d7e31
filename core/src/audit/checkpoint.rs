use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::Serialize;

use crate::canonical::to_canonical_vec;
use crate::error::AuditError;
use crate::model::Checkpoint;

#[derive(Serialize)]
struct Payload<'a> {
    seq: u64,
    hash: &'a str,
    ts: &'a str,
    public_key: &'a str,
}

/// The bytes a checkpoint signature covers: `JCS({"hash","public_key","seq","ts"})`.
pub fn checkpoint_payload(
    seq: u64,
    hash: &str,
    ts: &str,
    public_key: &str,
) -> Result<Vec<u8>, AuditError> {
    to_canonical_vec(&Payload {
        seq,
        hash,
        ts,
        public_key,
    })
}

/// An Ed25519 key that signs checkpoints.
pub struct Signer {
    key: SigningKey,
    public_hex: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret half.
        f.debug_struct("Signer")
            .field("public_key", &self.public_hex)
            .finish()
    }
}

impl Signer {
    /// A signer from a 32-byte secret seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let key = SigningKey::from_bytes(seed);
        let public_hex = hex::encode(key.verifying_key().as_bytes());
        Signer { key, public_hex }
    }

    /// Hex of the public key.
    pub fn public_key(&self) -> &str {
        &self.public_hex
    }

    /// Signs "the chain up to `seq` ends in `hash`".
    pub fn checkpoint(&self, seq: u64, hash: &str, ts: &str) -> Result<Checkpoint, AuditError> {
        let payload = checkpoint_payload(seq, hash, ts, &self.public_hex)?;
        let signature = self.key.sign(&payload);
        Ok(Checkpoint {
            seq,
            hash: hash.to_owned(),
            ts: ts.to_owned(),
            public_key: self.public_hex.clone(),
            signature: hex::encode(signature.to_bytes()),
        })
    }
}

/// Why a checkpoint's signature does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// `public_key` is not 32 hex-encoded bytes, or not a valid Ed25519 point.
    #[error("public_key is not a valid Ed25519 key (32 hex-encoded bytes)")]
    BadPublicKey,
    /// `signature` is not 64 hex-encoded bytes.
    #[error("signature is not 64 hex-encoded bytes")]
    BadSignatureEncoding,
    /// The signed payload cannot be built from the checkpoint's fields.
    #[error("cannot build the signed payload: {0}")]
    Payload(String),
    /// The signature is well-formed but does not verify.
    #[error("signature does not verify")]
    Mismatch,
}

/// Checks a checkpoint's signature against the key it names.
pub fn verify_checkpoint(cp: &Checkpoint) -> Result<(), CheckpointError> {
    let key_bytes: [u8; 32] = hex::decode(&cp.public_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(CheckpointError::BadPublicKey)?;
    let key = VerifyingKey::from_bytes(&key_bytes).map_err(|_| CheckpointError::BadPublicKey)?;
    let sig_bytes: [u8; 64] = hex::decode(&cp.signature)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(CheckpointError::BadSignatureEncoding)?;
    let payload = checkpoint_payload(cp.seq, &cp.hash, &cp.ts, &cp.public_key)
        .map_err(|e| CheckpointError::Payload(e.to_string()))?;
    key.verify_strict(&payload, &Signature::from_bytes(&sig_bytes))
        .map_err(|_| CheckpointError::Mismatch)
}
