//! Request parameters, as RFC 6749 §3.1 wants them: empty values count as absent, and a
//! parameter sent twice is an error rather than a guess.

use axum::http::{HeaderMap, header};

use super::error::OAuthError;

#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(raw: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(raw).into_owned().collect())
    }

    /// An `application/x-www-form-urlencoded` body (a charset parameter is fine).
    pub fn from_form(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        if !is_form(headers) {
            return Err(OAuthError::invalid_request(
                "expected an application/x-www-form-urlencoded body",
            ));
        }
        Ok(Self::parse(body))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The first parameter (of `names`, or any if empty) given more than once with a value.
    pub fn duplicated<'a>(&'a self, names: &[&str]) -> Option<&'a str> {
        let mut seen = std::collections::HashSet::new();
        self.0
            .iter()
            .filter(|(k, v)| !v.is_empty() && (names.is_empty() || names.contains(&k.as_str())))
            .find(|(k, _)| !seen.insert(k.as_str()))
            .map(|(k, _)| k.as_str())
    }
}

pub fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_absent_and_duplicates_are_found() {
        let p = Params::parse(b"state=&scope=openid&scope=email&x=%C3%A9");
        assert_eq!(p.get("state"), None);
        assert_eq!(p.duplicated(&[]), Some("scope"));
        assert_eq!(p.duplicated(&["state"]), None);
        assert_eq!(p.get("x"), Some("é"));
        // Invalid UTF-8 never panics.
        let _ = Params::parse(b"a=%FF%FE");
    }
}
