//! Redirect URIs as registered: compared as exact strings, never normalised (OIDC Core §3.1.2.1).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Accepts https URLs, and http only for loopback hosts (development portals and native
    /// apps, RFC 8252); no fragment, no wildcard (RFC 9700 §2.1).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = url::Url::parse(raw).map_err(|_| format!("`{raw}` is not an absolute URL"))?;
        if url.fragment().is_some() || raw.contains('#') {
            return Err(format!("`{raw}` must not have a fragment"));
        }
        if raw.contains('*') {
            return Err(format!("`{raw}` must not hold a wildcard"));
        }
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"));
        match url.scheme() {
            "https" => {}
            "http" if loopback => {}
            "http" => {
                return Err(format!(
                    "`{raw}` must use https (http is for loopback only)"
                ));
            }
            _ => return Err(format!("`{raw}` must be an http(s) URL")),
        }
        // The response adds these; a registered URI holding one would send them twice.
        if url.query_pairs().any(|(k, _)| {
            matches!(
                k.as_ref(),
                "code" | "state" | "iss" | "error" | "error_description"
            )
        }) {
            return Err(format!(
                "`{raw}` must not carry code, state, iss or error in its query"
            ));
        }
        if url.host_str().is_none_or(str::is_empty) || !url.username().is_empty() {
            return Err(format!("`{raw}` must have a host and no credentials"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The origin, for a form-action CSP that lets the browser follow our redirect.
    pub fn origin(&self) -> String {
        url::Url::parse(&self.0)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_default()
    }

    /// This URI with response parameters appended to its query, keeping the registered ones.
    pub fn with_params(&self, params: &[(&str, &str)]) -> String {
        if params.is_empty() {
            return self.0.clone();
        }
        let mut url = url::Url::parse(&self.0).expect("validated at registration");
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        url.to_string()
    }
}

impl TryFrom<String> for RedirectUri {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<RedirectUri> for String {
    fn from(r: RedirectUri) -> String {
        r.0
    }
}

impl fmt::Display for RedirectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_rules() {
        assert!(RedirectUri::parse("https://portal.example.fr/cb").is_ok());
        assert!(RedirectUri::parse("http://127.0.0.1:9000/cb").is_ok());
        assert!(RedirectUri::parse("https://x.fr/cb#frag").is_err());
        assert!(RedirectUri::parse("http://portal.example/cb").is_err());
        assert!(RedirectUri::parse("https://*.x.fr/cb").is_err());
        assert!(RedirectUri::parse("javascript:alert(1)").is_err());
        assert!(RedirectUri::parse("cb").is_err());
        assert!(RedirectUri::parse("https://p.fr/cb?state=x").is_err());
    }

    #[test]
    fn params_keep_the_registered_query() {
        let r = RedirectUri::parse("https://p.fr/cb?dummy1=lorem").unwrap();
        assert_eq!(
            r.with_params(&[("code", "a b")]),
            "https://p.fr/cb?dummy1=lorem&code=a+b"
        );
    }
}
