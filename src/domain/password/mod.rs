//! The password policy: the guide's rules (length, letter, digit, special character) plus
//! what makes them safe: a blocklist of common passwords, no identifier inside, an entropy
//! floor computed as the CNIL's 2022 recommendation does, and a maximum length generous
//! enough for passphrases. History is checked by the caller (it needs the stored hashes).

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::config::PasswordSettings;

/// 20,000 most common passwords (zxcvbn-ts `language-common`, MIT) and French favourites.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common-passwords.txt")
        .lines()
        .filter(|l| !l.is_empty())
        .collect()
});

pub fn blocklist_len() -> usize {
    COMMON.len()
}

/// One broken rule; the page names each (`key` is the locale string, `n` its number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Violation {
    TooShort(usize),
    TooLong(usize),
    NoLetter,
    NoDigit,
    NoSpecial,
    Common,
    ContainsIdentifier,
    TooWeak(u32),
    Reused(usize),
    Mismatch,
}

impl Violation {
    pub fn key(&self) -> &'static str {
        match self {
            Violation::TooShort(_) => "policy.too_short",
            Violation::TooLong(_) => "policy.too_long",
            Violation::NoLetter => "policy.no_letter",
            Violation::NoDigit => "policy.no_digit",
            Violation::NoSpecial => "policy.no_special",
            Violation::Common => "policy.common",
            Violation::ContainsIdentifier => "policy.contains_identifier",
            Violation::TooWeak(_) => "policy.too_weak",
            Violation::Reused(_) => "policy.reused",
            Violation::Mismatch => "policy.mismatch",
        }
    }

    pub fn number(&self) -> Option<usize> {
        match self {
            Violation::TooShort(n) | Violation::TooLong(n) | Violation::Reused(n) => Some(*n),
            Violation::TooWeak(b) => Some(*b as usize),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct PasswordPolicy {
    pub min_length: usize,
    pub max_length: usize,
    pub require_letter: bool,
    pub require_digit: bool,
    pub require_special: bool,
    pub history: usize,
    /// Bits; 50 when failed sign-ins are throttled, 80 otherwise (CNIL 2022).
    pub min_entropy_bits: u32,
}

impl PasswordPolicy {
    pub fn from_settings(s: &PasswordSettings) -> Self {
        Self {
            min_length: s.min_length,
            max_length: s.max_length,
            require_letter: s.require_letter,
            require_digit: s.require_digit,
            require_special: s.require_special,
            history: s.history,
            min_entropy_bits: s.min_entropy_bits,
        }
    }

    /// Every rule `password` breaks for the account `identifier` (empty = acceptable).
    pub fn check(&self, password: &str, identifier: &str) -> Vec<Violation> {
        let mut v = Vec::new();
        let len = password.chars().count();
        if len < self.min_length {
            v.push(Violation::TooShort(self.min_length));
        }
        if len > self.max_length {
            v.push(Violation::TooLong(self.max_length));
        }
        if self.require_letter && !password.chars().any(char::is_alphabetic) {
            v.push(Violation::NoLetter);
        }
        if self.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
            v.push(Violation::NoDigit);
        }
        if self.require_special && !password.chars().any(is_special) {
            v.push(Violation::NoSpecial);
        }
        if is_common(password) {
            v.push(Violation::Common);
        }
        let id = identifier.trim().to_lowercase();
        if id.chars().count() >= 3 && password.to_lowercase().contains(&id) {
            v.push(Violation::ContainsIdentifier);
        }
        if entropy_bits(password) < self.min_entropy_bits as f64 {
            v.push(Violation::TooWeak(self.min_entropy_bits));
        }
        v
    }
}

fn is_special(c: char) -> bool {
    !c.is_alphanumeric() && !c.is_whitespace() || c == ' '
}

/// Common as such, or a common word dressed with digits and symbols ("Password123!").
fn is_common(password: &str) -> bool {
    let lower = password.to_lowercase();
    if COMMON.contains(lower.as_str()) {
        return true;
    }
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    core.chars().count() >= 4 && COMMON.contains(core)
}

/// CNIL 2022: entropy = log2(N^L), N the size of the alphabet the password draws from.
pub fn entropy_bits(password: &str) -> f64 {
    let mut n = 0u32;
    if password.chars().any(|c| c.is_ascii_lowercase()) {
        n += 26;
    }
    if password.chars().any(|c| c.is_ascii_uppercase()) {
        n += 26;
    }
    if password.chars().any(|c| c.is_ascii_digit()) {
        n += 10;
    }
    if password.chars().any(|c| c.is_ascii() && is_special(c)) {
        n += 33;
    }
    if !password.is_ascii() {
        // Accented letters and the like: a conservative extra alphabet.
        n += 30;
    }
    if n == 0 {
        return 0.0;
    }
    password.chars().count() as f64 * (n as f64).log2()
}

/// A random temporary password that satisfies the default policy: 16 characters from an
/// alphabet without look-alikes (no 0/O, 1/l/I), at least one of each class.
pub fn temporary() -> String {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const SPECIAL: &[u8] = b"#$%&*+-=?@!";
    let pick = |set: &[u8], byte: u8| set[byte as usize % set.len()] as char;
    let bytes = crate::crypto::random_bytes::<20>();
    let mut out: Vec<char> = vec![
        pick(LOWER, bytes[0]),
        pick(UPPER, bytes[1]),
        pick(DIGIT, bytes[2]),
        pick(SPECIAL, bytes[3]),
    ];
    let all: Vec<u8> = [LOWER, UPPER, DIGIT, SPECIAL].concat();
    out.extend(bytes[4..16].iter().map(|b| pick(&all, *b)));
    // Shuffle so the classes are not always in front (Fisher–Yates on the spare bytes).
    for i in (1..out.len()).rev() {
        let j = bytes[16 + i % 4] as usize % (i + 1);
        out.swap(i, j);
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> PasswordPolicy {
        PasswordPolicy::from_settings(&PasswordSettings::default())
    }

    #[test]
    fn the_guides_rules_are_named() {
        let p = policy();
        assert!(p.check("Tr0ub4dor&3x", "jdupont").is_empty());
        let v = p.check("abc", "jdupont");
        assert!(v.contains(&Violation::TooShort(8)));
        assert!(v.contains(&Violation::NoDigit));
        assert!(v.contains(&Violation::NoSpecial));
        assert!(p.check("12345678#", "x").contains(&Violation::NoLetter));
    }

    #[test]
    fn common_identifier_and_weak_passwords_are_refused() {
        let p = policy();
        assert!(blocklist_len() >= 10_000);
        assert!(p.check("Password123!", "x").contains(&Violation::Common));
        assert!(p.check("azerty", "x").contains(&Violation::Common));
        assert!(
            p.check("Jdupont#2026", "jdupont")
                .contains(&Violation::ContainsIdentifier)
        );
        // 8 characters of 69 symbols ≈ 48.9 bits < 50.
        assert!(p.check("xk7#pq2!", "x").contains(&Violation::TooWeak(50)));
        assert!(entropy_bits("correct horse battery staple") > 80.0);
        assert!(
            p.check(&"Long passphrase 1 ".repeat(10), "x")
                .contains(&Violation::TooLong(128))
        );
    }

    #[test]
    fn temporary_passwords_pass_the_policy() {
        for _ in 0..200 {
            let t = temporary();
            assert_eq!(t.chars().count(), 16);
            assert!(policy().check(&t, "someone").is_empty(), "{t}");
        }
    }
}
