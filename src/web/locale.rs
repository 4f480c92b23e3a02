//! Page language: French first, English when asked by `ui_locales` or `Accept-Language`.

use axum::http::{HeaderMap, header};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum Locale {
    #[default]
    #[serde(rename = "fr")]
    Fr,
    #[serde(rename = "en")]
    En,
}

pub const SUPPORTED: &[&str] = &["fr", "en"];

impl Locale {
    pub fn as_str(self) -> &'static str {
        match self {
            Locale::Fr => "fr",
            Locale::En => "en",
        }
    }

    fn from_tag(tag: &str) -> Option<Self> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "fr" => Some(Locale::Fr),
            "en" => Some(Locale::En),
            _ => None,
        }
    }

    /// The first supported tag of a space-separated `ui_locales`.
    pub fn from_ui_locales(ui_locales: &str) -> Option<Self> {
        ui_locales.split(' ').find_map(Self::from_tag)
    }

    /// The best supported language of `Accept-Language`, by q-value then order.
    pub fn from_accept_language(headers: &HeaderMap) -> Option<Self> {
        let raw = headers.get(header::ACCEPT_LANGUAGE)?.to_str().ok()?;
        let mut best: Option<(f32, Locale)> = None;
        for part in raw.split(',') {
            let mut it = part.split(';');
            let Some(loc) = it.next().and_then(Self::from_tag) else {
                continue;
            };
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
                best = Some((q, loc));
            }
        }
        best.map(|(_, l)| l)
    }

    pub fn negotiate(ui_locales: Option<&str>, headers: &HeaderMap) -> Self {
        ui_locales
            .and_then(Self::from_ui_locales)
            .or_else(|| Self::from_accept_language(headers))
            .unwrap_or_default()
    }
}

/// The browser's language (`Accept-Language`), for a handler that has no flow of its own
/// to take it from.
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Locale {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Locale::negotiate(None, &parts.headers))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn negotiation() {
        let mut h = HeaderMap::new();
        assert_eq!(Locale::negotiate(None, &h), Locale::Fr);
        h.insert(
            header::ACCEPT_LANGUAGE,
            HeaderValue::from_static("de;q=1, en-GB;q=0.8, fr;q=0.5"),
        );
        assert_eq!(Locale::negotiate(None, &h), Locale::En);
        assert_eq!(Locale::negotiate(Some("se fr-CA"), &h), Locale::Fr);
        assert_eq!(Locale::negotiate(Some("se"), &h), Locale::En);
    }
}
