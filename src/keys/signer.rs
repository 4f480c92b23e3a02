//! One signing key, signed with ring for every algorithm: RS256 (not the `rsa` crate, whose
//! signing has a timing side channel, RUSTSEC-2023-0071), ES256 and EdDSA (Ed25519).
//! `rsa` only generates RSA keys, which ring cannot do; generation leaks no secret by timing.

use openidconnect::core::{CoreJsonCurveType, CoreJsonWebKey, CoreJwsSigningAlgorithm};
use openidconnect::{JsonWebKeyId, PrivateSigningKey, SigningError};
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use serde::{Deserialize, Serialize};

use super::KeyError;
use crate::crypto::{b64url, sha256};
use crate::domain::IdTokenAlg;

/// A public JWK as published: `kid`, `kty`, `use`, `alg`, and the public members only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub alg: String,
    pub kid: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
}

enum Pair {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

pub struct SigningKey {
    pub alg: IdTokenAlg,
    pub jwk: Jwk,
    pair: Pair,
    /// The public parts in raw form, for openidconnect's verification key.
    raw_public: (Vec<u8>, Vec<u8>),
}

impl SigningKey {
    /// A new key and its PKCS#8 DER encoding.
    pub fn generate(alg: IdTokenAlg, rsa_bits: usize) -> Result<(Self, Vec<u8>), KeyError> {
        let rng = SystemRandom::new();
        let der = match alg {
            IdTokenAlg::RS256 => {
                use rsa::pkcs8::EncodePrivateKey;
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, rsa_bits)
                    .map_err(|e| KeyError::Generate(e.to_string()))?;
                key.to_pkcs8_der()
                    .map_err(|e| KeyError::Generate(e.to_string()))?
                    .as_bytes()
                    .to_vec()
            }
            IdTokenAlg::ES256 => {
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| KeyError::Generate("P-256".into()))?
                    .as_ref()
                    .to_vec()
            }
            IdTokenAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| KeyError::Generate("Ed25519".into()))?
                .as_ref()
                .to_vec(),
        };
        Ok((Self::from_pkcs8(alg, &der)?, der))
    }

    pub fn from_pkcs8(alg: IdTokenAlg, der: &[u8]) -> Result<Self, KeyError> {
        let bad = |e: String| KeyError::BadKey(format!("{alg}: {e}"));
        let (pair, kty, raw_public, mut jwk_members) = match alg {
            IdTokenAlg::RS256 => {
                let p = RsaKeyPair::from_pkcs8(der).map_err(|e| bad(e.to_string()))?;
                if p.public().modulus_len() * 8 < 2048 {
                    return Err(bad("RSA keys need at least 2048 bits".into()));
                }
                let c = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(p.public());
                let members = [("n", b64url(&c.n)), ("e", b64url(&c.e))];
                (Pair::Rsa(p), "RSA", (c.n, c.e), members.to_vec())
            }
            IdTokenAlg::ES256 => {
                let p = EcdsaKeyPair::from_pkcs8(
                    &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    der,
                    &SystemRandom::new(),
                )
                .map_err(|e| bad(e.to_string()))?;
                let point = p.public_key().as_ref(); // 0x04 || x || y
                let (x, y) = (point[1..33].to_vec(), point[33..65].to_vec());
                let members = vec![
                    ("crv", "P-256".to_owned()),
                    ("x", b64url(&x)),
                    ("y", b64url(&y)),
                ];
                (Pair::Ec(p), "EC", (x, y), members)
            }
            IdTokenAlg::EdDSA => {
                let p = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|e| bad(e.to_string()))?;
                let x = p.public_key().as_ref().to_vec();
                let members = vec![("crv", "Ed25519".to_owned()), ("x", b64url(&x))];
                (Pair::Ed(p), "OKP", (x, Vec::new()), members)
            }
        };
        // RFC 7638 thumbprint as kid: the same key gets the same kid on every replica.
        jwk_members.push(("kty", kty.to_owned()));
        jwk_members.sort();
        let canonical = format!(
            "{{{}}}",
            jwk_members
                .iter()
                .map(|(k, v)| format!("\"{k}\":\"{v}\""))
                .collect::<Vec<_>>()
                .join(",")
        );
        let kid = b64url(sha256(canonical));
        let get = |name: &str| {
            jwk_members
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        };
        let jwk = Jwk {
            kty: kty.to_owned(),
            use_: "sig".into(),
            alg: alg.as_str().to_owned(),
            kid,
            n: get("n"),
            e: get("e"),
            crv: get("crv"),
            x: get("x"),
            y: get("y"),
        };
        Ok(Self {
            alg,
            jwk,
            pair,
            raw_public,
        })
    }

    pub fn kid(&self) -> &str {
        &self.jwk.kid
    }

    pub fn sign_bytes(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Rsa(p) => {
                let mut sig = vec![0; p.public().modulus_len()];
                p.sign(&signature::RSA_PKCS1_SHA256, &rng, msg, &mut sig)
                    .expect("RSA signing with a valid key");
                sig
            }
            Pair::Ec(p) => p
                .sign(&rng, msg)
                .expect("ECDSA signing with a valid key")
                .as_ref()
                .to_vec(),
            Pair::Ed(p) => p.sign(msg).as_ref().to_vec(),
        }
    }

    /// A compact JWS of `claims` with this key (for logout tokens and other non-ID-token JWTs).
    pub fn sign_jwt(&self, typ: &str, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({ "alg": self.alg.as_str(), "kid": self.kid(), "typ": typ });
        let input = format!(
            "{}.{}",
            b64url(header.to_string()),
            b64url(claims.to_string())
        );
        let sig = self.sign_bytes(input.as_bytes());
        format!("{input}.{}", b64url(sig))
    }

    /// Checks a signature made by this key (for tokens Sésame issued, e.g. `id_token_hint`).
    pub fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        use ring::signature::UnparsedPublicKey;
        let (a, b) = &self.raw_public;
        match self.alg {
            IdTokenAlg::RS256 => ring::rsa::PublicKeyComponents { n: a, e: b }
                .verify(&signature::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
            IdTokenAlg::ES256 => {
                let mut point = vec![4u8];
                point.extend_from_slice(a);
                point.extend_from_slice(b);
                UnparsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .verify(msg, sig)
                    .is_ok()
            }
            IdTokenAlg::EdDSA => UnparsedPublicKey::new(&signature::ED25519, a)
                .verify(msg, sig)
                .is_ok(),
        }
    }

    pub fn core_alg(&self) -> CoreJwsSigningAlgorithm {
        core_alg(self.alg)
    }
}

pub fn core_alg(alg: IdTokenAlg) -> CoreJwsSigningAlgorithm {
    match alg {
        IdTokenAlg::RS256 => CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
        IdTokenAlg::ES256 => CoreJwsSigningAlgorithm::EcdsaP256Sha256,
        IdTokenAlg::EdDSA => CoreJwsSigningAlgorithm::EdDsa,
    }
}

impl PrivateSigningKey for SigningKey {
    type VerificationKey = CoreJsonWebKey;

    fn sign(&self, alg: &CoreJwsSigningAlgorithm, msg: &[u8]) -> Result<Vec<u8>, SigningError> {
        if *alg != self.core_alg() {
            return Err(SigningError::UnsupportedAlg(format!("{alg:?}")));
        }
        Ok(self.sign_bytes(msg))
    }

    fn as_verification_key(&self) -> CoreJsonWebKey {
        let kid = Some(JsonWebKeyId::new(self.jwk.kid.clone()));
        let (a, b) = self.raw_public.clone();
        match self.alg {
            IdTokenAlg::RS256 => CoreJsonWebKey::new_rsa(a, b, kid),
            IdTokenAlg::ES256 => CoreJsonWebKey::new_ec(a, b, CoreJsonCurveType::P256, kid),
            IdTokenAlg::EdDSA => CoreJsonWebKey::new_okp(a, CoreJsonCurveType::Ed25519, kid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alg_signs_and_publishes_only_public_members() {
        for alg in IdTokenAlg::ALL {
            let (k, der) = SigningKey::generate(*alg, 2048).unwrap();
            let again = SigningKey::from_pkcs8(*alg, &der).unwrap();
            assert_eq!(k.kid(), again.kid(), "kid is the thumbprint");
            let json = serde_json::to_value(&k.jwk).unwrap();
            for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
                assert!(json.get(private).is_none());
            }
            assert_eq!(json["use"], "sig");
            assert!(!k.sign_bytes(b"msg").is_empty());
        }
    }

    #[test]
    fn rsa_signature_verifies_with_published_key() {
        let (k, _) = SigningKey::generate(IdTokenAlg::RS256, 2048).unwrap();
        let sig = k.sign_bytes(b"hello");
        let (n, e) = k.raw_public.clone();
        let pk = ring::rsa::PublicKeyComponents { n, e };
        pk.verify(&signature::RSA_PKCS1_2048_8192_SHA256, b"hello", &sig)
            .unwrap();
    }
}
