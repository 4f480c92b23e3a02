//! Sealing private keys at rest: AES-256-GCM under the key-encryption key (KEK),
//! with the key id as associated data so a sealed blob cannot be moved to another row.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use super::KeyError;
use crate::crypto::random_bytes;

pub struct Kek(LessSafeKey);

impl Kek {
    pub fn from_base64(b64: &str) -> Result<Self, KeyError> {
        let bytes = STANDARD.decode(b64.trim()).map_err(|_| KeyError::BadKek)?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| KeyError::BadKek)?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// The development fallback: `keys_dir/master.key`, created (mode 0600) if missing.
    pub fn from_dir(dir: &Path) -> Result<Self, KeyError> {
        let path = dir.join("master.key");
        if !path.exists() {
            std::fs::create_dir_all(dir).map_err(|e| KeyError::io(dir, e))?;
            write_private(&path, STANDARD.encode(random_bytes::<32>()).as_bytes())?;
            tracing::warn!(path = %path.display(), "generated a key-encryption key file; set keys.encryption_key from a secret in production");
        }
        let b64 = std::fs::read_to_string(&path).map_err(|e| KeyError::io(&path, e))?;
        Self::from_base64(&b64)
    }

    /// The KEK the settings name: `keys.encryption_key`, else `keys_dir/master.key`.
    pub fn from_settings(settings: &crate::config::Settings) -> Result<Self, KeyError> {
        match &settings.keys.encryption_key {
            Some(b64) => Self::from_base64(b64),
            None => Self::from_dir(&settings.keys_dir),
        }
    }

    pub fn seal(&self, kid: &str, plain: &[u8]) -> String {
        let nonce_bytes = random_bytes::<NONCE_LEN>();
        let mut buf = plain.to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(kid.as_bytes()),
                &mut buf,
            )
            .expect("AES-GCM sealing of a small buffer cannot fail");
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&buf);
        STANDARD.encode(out)
    }

    pub fn open(&self, kid: &str, sealed: &str) -> Result<Vec<u8>, KeyError> {
        let raw = STANDARD
            .decode(sealed)
            .map_err(|_| KeyError::Unseal(kid.to_owned()))?;
        if raw.len() < NONCE_LEN {
            return Err(KeyError::Unseal(kid.to_owned()));
        }
        let (nonce, body) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| KeyError::Unseal(kid.to_owned()))?;
        let mut body = body.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(kid.as_bytes()), &mut body)
            .map_err(|_| KeyError::Unseal(kid.to_owned()))?;
        Ok(plain.to_vec())
    }
}

pub(super) fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| KeyError::io(path, e))?;
    f.write_all(bytes).map_err(|e| KeyError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trip_bound_to_kid() {
        let kek = Kek::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        let s = kek.seal("k1", b"secret");
        assert_eq!(kek.open("k1", &s).unwrap(), b"secret");
        assert!(kek.open("k2", &s).is_err());
        let other = Kek::from_base64(&STANDARD.encode([8u8; 32])).unwrap();
        assert!(other.open("k1", &s).is_err());
        assert!(Kek::from_base64("c2hvcnQ=").is_err());
    }
}
