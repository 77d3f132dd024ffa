//! Password hashing with argon2id (memory-hard, so a stolen database is slow to brute-force on
//! GPUs), and a short-lived cache of verified credentials: one verification costs tens of
//! milliseconds and 19 MiB by design, which a client logging metrics must not pay per request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sha2::{Digest, Sha256};
use wasmflow_core::{Error, Result};

/// MLflow's rule (`_validate_password`).
const MIN_PASSWORD_LEN: usize = 12;

pub fn validate(password: &str) -> Result<()> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(Error::invalid("Password must be at least 12 characters."));
    }
    Ok(())
}

/// An argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`) with a random salt.
pub fn hash(password: &str) -> Result<String> {
    // 16 random bytes from the OS (UUID v4 draws them from getrandom).
    let salt = uuid::Uuid::new_v4();
    Argon2::default()
        .hash_password_with_salt(password.as_bytes(), salt.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("cannot hash a password: {e}")))
}

/// Whether `password` matches the stored PHC string; a malformed hash matches nothing.
pub fn verify(password: &str, hash: &str) -> bool {
    Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// How long a verified credential is trusted without hashing again.
const CACHE_TTL: Duration = Duration::from_secs(300);
const CACHE_MAX: usize = 10_000;

/// Credentials verified recently, keyed by a keyed digest of user and password so the cache
/// holds no password. Entries of a user are dropped when their password, admin flag or account
/// changes.
pub struct VerifiedCache {
    key: [u8; 32],
    entries: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl VerifiedCache {
    pub fn new() -> Self {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
        Self {
            key,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn digest(&self, username: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update((username.len() as u64).to_le_bytes());
        h.update(username.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    pub fn contains(&self, username: &str, password: &str) -> bool {
        let digest = self.digest(username, password);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&digest) {
            Some((_, at)) if at.elapsed() < CACHE_TTL => true,
            Some(_) => {
                entries.remove(&digest);
                false
            }
            None => false,
        }
    }

    pub fn insert(&self, username: &str, password: &str) {
        let digest = self.digest(username, password);
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_MAX {
            entries.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
            if entries.len() >= CACHE_MAX {
                entries.clear();
            }
        }
        entries.insert(digest, (username.to_string(), Instant::now()));
    }

    pub fn forget(&self, username: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (user, _)| user != username);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_salted_argon2id_and_verify() {
        let a = hash("correct horse battery").unwrap();
        let b = hash("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify("correct horse battery", &a));
        assert!(!verify("correct horse batterY", &a));
        assert!(!verify("anything", "not a hash"));
    }

    #[test]
    fn short_passwords_are_refused() {
        assert!(validate("elevenchars").is_err());
        assert!(validate("twelve chars").is_ok());
    }

    #[test]
    fn cache_forgets_a_user() {
        let cache = VerifiedCache::new();
        cache.insert("alice", "pw-one-two-three");
        cache.insert("bob", "pw-one-two-three");
        assert!(cache.contains("alice", "pw-one-two-three"));
        assert!(!cache.contains("alice", "another password"));
        cache.forget("alice");
        assert!(!cache.contains("alice", "pw-one-two-three"));
        assert!(cache.contains("bob", "pw-one-two-three"));
    }
}
