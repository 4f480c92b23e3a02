//! PKCE (RFC 7636), S256 only: `plain` gives no protection against a stolen code.

use crate::crypto::{b64url, ct_eq, sha256};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CodeChallenge(String);

fn unreserved(s: &str) -> bool {
    (43..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl CodeChallenge {
    /// `method` absent means `plain` (RFC 7636 §4.3), which is refused.
    pub fn parse(challenge: &str, method: Option<&str>) -> Result<Self, &'static str> {
        match method {
            Some("S256") => {}
            None | Some("plain") => return Err("only the S256 code_challenge_method is supported"),
            Some(_) => return Err("unknown code_challenge_method"),
        }
        // BASE64URL(SHA-256) is exactly 43 characters.
        if challenge.len() != 43 || !unreserved(challenge) {
            return Err("code_challenge must be 43 base64url characters");
        }
        Ok(Self(challenge.to_owned()))
    }

    pub fn verify(&self, verifier: &str) -> bool {
        unreserved(verifier) && ct_eq(b64url(sha256(verifier)).as_bytes(), self.0.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7636_appendix_b() {
        let c = CodeChallenge::parse("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Some("S256"))
            .unwrap();
        assert!(c.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!c.verify("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXl"));
        assert!(!c.verify("short"));
    }

    #[test]
    fn plain_and_malformed_are_refused() {
        let v = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(CodeChallenge::parse(v, None).is_err());
        assert!(CodeChallenge::parse(v, Some("plain")).is_err());
        assert!(CodeChallenge::parse("a+b/", Some("S256")).is_err());
    }
}
