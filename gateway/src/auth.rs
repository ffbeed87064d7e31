//! Bearer tokens: one admin token, one token per agent. Tokens are random 256-bit values; only
//! their SHA-256 is kept, and comparisons are constant-time. No token ever reaches a log line.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The admin token.
    Admin,
    /// An agent's token.
    Agent(String),
}

/// SHA-256 of a token, hex.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A fresh token: `aa_` + 43 base64url characters (256 bits).
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::from("aa_");
    // 6 bits at a time from the 256 random bits.
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(char::from(
                ALPHABET
                    .get(((acc >> bits) & 63) as usize)
                    .copied()
                    .unwrap_or(b'A'),
            ));
        }
    }
    if bits > 0 {
        out.push(char::from(
            ALPHABET
                .get(((acc << (6 - bits)) & 63) as usize)
                .copied()
                .unwrap_or(b'A'),
        ));
    }
    Ok(out)
}

/// Reads the admin token from `path`, or creates one there (mode 0600). Returns the token.
pub fn load_or_create_admin_token(path: &Path) -> std::io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        let token = std::fs::read_to_string(path)?.trim().to_owned();
        if token.len() < 16 {
            return Err(std::io::Error::other(format!(
                "{} holds no usable admin token (at least 16 characters)",
                path.display()
            )));
        }
        return Ok(token);
    }
    let token = new_token().map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(format!("{token}\n").as_bytes())?;
    f.sync_all()?;
    Ok(token)
}

/// Verifies bearer tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    admin_hash: [u8; 32],
    /// token hash → agent id
    agents: HashMap<String, String>,
}

impl Tokens {
    /// With the admin token.
    pub fn new(admin_token: &str) -> Self {
        Tokens {
            admin_hash: Sha256::digest(admin_token.as_bytes()).into(),
            agents: HashMap::new(),
        }
    }

    /// Registers (or replaces) an agent's token hash.
    pub fn set_agent(&mut self, agent_id: &str, token_hash: &str) {
        self.agents.retain(|_, id| id != agent_id);
        self.agents
            .insert(token_hash.to_owned(), agent_id.to_owned());
    }

    /// Replaces every agent's token hash (a replica in step with the database). An empty hash
    /// (a revoked token) authenticates no one.
    pub fn replace_agents<'a>(
        &mut self,
        agents: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) {
        self.agents = agents
            .into_iter()
            .filter(|(_, hash)| !hash.is_empty())
            .map(|(id, hash)| (hash.clone(), id.clone()))
            .collect();
    }

    /// Revokes the agent's token: it no longer authenticates anyone.
    pub fn revoke(&mut self, agent_id: &str) {
        self.agents.retain(|_, id| id != agent_id);
    }

    /// Who holds `token`, if anyone. The admin check is constant-time; agent tokens are looked
    /// up by their SHA-256, so timing can reveal nothing about a token itself.
    pub fn caller(&self, token: &str) -> Option<Caller> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if bool::from(digest.ct_eq(&self.admin_hash)) {
            return Some(Caller::Admin);
        }
        let hash = hex::encode(digest);
        self.agents.get(&hash).map(|id| Caller::Agent(id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_recognised() {
        let a = new_token().unwrap_or_default();
        let b = new_token().unwrap_or_default();
        assert_eq!(a.len(), 3 + 43);
        assert_ne!(a, b);
        let mut t = Tokens::new("admin-secret");
        t.set_agent("bot", &token_hash(&a));
        assert_eq!(t.caller("admin-secret"), Some(Caller::Admin));
        assert_eq!(t.caller(&a), Some(Caller::Agent("bot".into())));
        assert_eq!(t.caller(&b), None);
        // A new token replaces the old one.
        t.set_agent("bot", &token_hash(&b));
        assert_eq!(t.caller(&a), None);
        assert_eq!(t.caller(&b), Some(Caller::Agent("bot".into())));
        t.revoke("bot");
        assert_eq!(t.caller(&b), None);
    }
}
