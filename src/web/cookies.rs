//! Our few cookies, read and written by hand: all HttpOnly, SameSite=Lax, Secure on https.

use axum::http::{HeaderMap, HeaderValue, header};

pub const SESSION: &str = "sesame_session";
/// Binds pending sign-in requests to the browser that started them.
pub const BROWSER: &str = "sesame_browser";

/// The value of cookie `name`, if the request carries it.
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value; `max_age` `None` makes a browser-session cookie, `Some(0)` deletes.
pub fn set(name: &str, value: &str, path: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut s = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Lax");
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        s.push_str("; Secure");
    }
    HeaderValue::from_str(&s).expect("cookie values are base64url")
}

pub fn clear(name: &str, path: &str, secure: bool) -> HeaderValue {
    set(name, "", path, Some(0), secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_among_several() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; sesame_session=xyz; b=2"),
        );
        assert_eq!(get(&h, SESSION), Some("xyz"));
        assert_eq!(get(&h, "c"), None);
        let c = set(SESSION, "v", "/", None, true);
        assert_eq!(
            c.to_str().unwrap(),
            "sesame_session=v; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
    }
}
