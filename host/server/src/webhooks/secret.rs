//! Webhook secrets at rest, as MLflow keeps them: a Fernet token (AES-128-CBC, then an
//! HMAC-SHA256 tag over the whole token), under the key of `MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`
//! (a url-safe base64 Fernet key). Without that variable MLflow makes a new key per process, so
//! its secrets are lost on restart; wasmflow keeps a generated key in a file beside the database.

use std::path::Path;

use aes::Aes128;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE;
use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 0x80;

#[derive(Clone)]
pub struct Fernet {
    signing: [u8; 16],
    encryption: [u8; 16],
}

impl Fernet {
    /// A key as Python's `cryptography` writes it: 32 bytes in url-safe base64.
    pub fn from_key(key: &str) -> anyhow::Result<Self> {
        let raw = URL_SAFE
            .decode(key.trim())
            .ok()
            .filter(|k| k.len() == 32)
            .ok_or_else(|| {
                anyhow::anyhow!("the webhook secret key must be 32 url-safe base64-encoded bytes")
            })?;
        let mut signing = [0; 16];
        let mut encryption = [0; 16];
        signing.copy_from_slice(&raw[..16]);
        encryption.copy_from_slice(&raw[16..]);
        Ok(Self {
            signing,
            encryption,
        })
    }

    pub fn generate_key() -> String {
        let mut raw = [0u8; 32];
        getrandom::fill(&mut raw).expect("the system random source failed");
        URL_SAFE.encode(raw)
    }

    /// The key of `MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY`, else the one in `key_file` (made on
    /// first use, readable by its owner only).
    ///
    /// Without a file (`None`: a PostgreSQL store, whose replicas must all decrypt what any of
    /// them stored) the variable is required.
    pub fn from_env_or_file(key_file: Option<&Path>) -> anyhow::Result<Self> {
        if let Ok(key) = std::env::var("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY")
            && !key.is_empty()
        {
            return Self::from_key(&key)
                .map_err(|e| anyhow::anyhow!("MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY: {e}"));
        }
        let Some(key_file) = key_file else {
            anyhow::bail!(
                "set MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY to a Fernet key (the same on every \
                 replica; one is printed by `openssl rand -base64 32 | tr '+/' '-_'`): with a \
                 PostgreSQL store there is no file to keep webhook secrets' key in"
            );
        };
        match std::fs::read_to_string(key_file) {
            Ok(key) => {
                Self::from_key(&key).map_err(|e| anyhow::anyhow!("'{}': {e}", key_file.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate_key();
                write_private(key_file, &key)?;
                tracing::info!(
                    "webhook secrets are encrypted with a new key in '{}' (set \
                     MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY to use your own)",
                    key_file.display()
                );
                Self::from_key(&key)
            }
            Err(e) => Err(anyhow::anyhow!(
                "cannot read the webhook secret key '{}': {e}",
                key_file.display()
            )),
        }
    }

    pub fn encrypt(&self, plain: &str) -> String {
        let mut iv = [0u8; 16];
        getrandom::fill(&mut iv).expect("the system random source failed");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let cipher = cbc::Encryptor::<Aes128>::new(&self.encryption.into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
        let mut token = Vec::with_capacity(1 + 8 + 16 + cipher.len() + 32);
        token.push(VERSION);
        token.extend_from_slice(&now.to_be_bytes());
        token.extend_from_slice(&iv);
        token.extend_from_slice(&cipher);
        let tag = self.mac(&token);
        token.extend_from_slice(&tag);
        URL_SAFE.encode(token)
    }

    pub fn decrypt(&self, token: &str) -> anyhow::Result<String> {
        let bad = || anyhow::anyhow!("the webhook secret cannot be decrypted with this key");
        let raw = URL_SAFE.decode(token.trim()).map_err(|_| bad())?;
        if raw.len() < 1 + 8 + 16 + 16 + 32 || raw[0] != VERSION {
            return Err(bad());
        }
        let (body, tag) = raw.split_at(raw.len() - 32);
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.signing).map_err(|_| bad())?;
        mac.update(body);
        mac.verify_slice(tag).map_err(|_| bad())?;
        let iv: [u8; 16] = body[9..25].try_into().map_err(|_| bad())?;
        let plain = cbc::Decryptor::<Aes128>::new(&self.encryption.into(), &iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&body[25..])
            .map_err(|_| bad())?;
        String::from_utf8(plain).map_err(|_| bad())
    }

    fn mac(&self, data: &[u8]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.signing)
            .expect("HMAC takes keys of any length");
        mac.update(data);
        mac.finalize().into_bytes().into()
    }
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot create the webhook secret key '{}': {e}",
            path.display()
        )
    })?;
    file.write_all(content.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_detects_tampering() {
        let f = Fernet::from_key(&Fernet::generate_key()).unwrap();
        let token = f.encrypt("s3cret-ü");
        assert_eq!(f.decrypt(&token).unwrap(), "s3cret-ü");
        let other = Fernet::from_key(&Fernet::generate_key()).unwrap();
        assert!(other.decrypt(&token).is_err());
        assert!(Fernet::from_key("short").is_err());
    }

    #[test]
    fn reads_tokens_made_by_python_cryptography() {
        // Fernet(key).encrypt(b"hello") from Python's `cryptography` package (with a fixed time
        // and IV).
        let f = Fernet::from_key("cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=").unwrap();
        let token = "gAAAAABlU_EAAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLUDpFCTfGz2XFbNHmfCv0YMdgLi56n1Yjngq4vT5ZInQ==";
        assert_eq!(f.decrypt(token).unwrap(), "hello");
    }
}
