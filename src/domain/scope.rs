//! Scopes: an ordered set of RFC 6749 scope-tokens.

use std::collections::BTreeSet;

/// Scopes Sésame knows; others in a request are ignored (RFC 6749 §3.3 lets the server narrow).
pub const SUPPORTED: &[&str] = &["openid", "profile", "email", "offline_access"];

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Parses a space-separated list; rejects characters outside the scope-token grammar.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut set = BTreeSet::new();
        for s in raw.split(' ').filter(|s| !s.is_empty()) {
            if !s
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err("scope holds characters outside the RFC 6749 grammar".into());
            }
            set.insert(s.to_owned());
        }
        Ok(Self(set))
    }

    /// Only the scopes Sésame supports.
    pub fn supported(self) -> Self {
        Self(
            self.0
                .into_iter()
                .filter(|s| SUPPORTED.contains(&s.as_str()))
                .collect(),
        )
    }

    pub fn contains(&self, s: &str) -> bool {
        self.0.contains(s)
    }

    pub fn is_subset(&self, other: &Scopes) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn without(mut self, s: &str) -> Self {
        self.0.remove(s);
        self
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let v: Vec<&str> = self.iter().collect();
        f.write_str(&v.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_filter() {
        let s = Scopes::parse("email  openid foo").unwrap().supported();
        assert_eq!(s.to_string(), "email openid");
        assert!(Scopes::parse("open\"id").is_err());
        assert!(Scopes::parse("openid").unwrap().is_subset(&s));
    }
}
