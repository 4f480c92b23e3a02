//! TOTP (RFC 6238) as authenticator apps support it, and the recovery codes that stand in
//! for a lost phone.

use totp_rs::{Builder, Secret, Totp};

use crate::crypto::{random_bytes, token_hash};

/// An authenticator for `secret` (SHA-1, 6 digits, 30 s, one step of skew: what apps support).
pub fn authenticator(secret_b32: &str, account: &str, issuer: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret_b32).ok()?;
    Builder::new()
        .with_secret(secret)
        .with_account_name(account)
        .with_issuer(Some(issuer))
        .build()
        .ok()
}

/// Ten recovery codes `xxxx-xxxx-xxxx-xxxx` (80 bits each).
pub fn recovery_codes() -> Vec<String> {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    (0..10)
        .map(|_| {
            let bytes = random_bytes::<16>();
            let chars: String = bytes
                .iter()
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
                .collect();
            format!(
                "{}-{}-{}-{}",
                &chars[0..4],
                &chars[4..8],
                &chars[8..12],
                &chars[12..16]
            )
        })
        .collect()
}

pub fn recovery_hash(code: &str) -> String {
    token_hash(&code.trim().to_lowercase().replace(' ', ""))
}

#[cfg(test)]
mod tests {
    #[test]
    fn recovery_codes_are_distinct_and_normalised() {
        let codes = super::recovery_codes();
        assert_eq!(codes.len(), 10);
        assert_eq!(codes[0].len(), 19);
        assert_ne!(codes[0], codes[1]);
        assert_eq!(
            super::recovery_hash(&codes[0].to_uppercase()),
            super::recovery_hash(&codes[0])
        );
    }
}
