//! Our few cookies, read and written by hand: all HttpOnly, SameSite=Lax, Path=/, no Domain.
//!
//! On an https issuer they are `Secure` and named `__Host-…`: browsers take such a cookie only
//! from this exact host over https, so a sibling sub-domain (or a plain-http page) cannot plant
//! one. A name sent more than once is read as absent: a planted copy can then neither be
//! picked instead of ours nor hide it, it only signs the browser out.

use std::borrow::Cow;

use axum::http::{HeaderMap, HeaderValue, header};

pub const SESSION: &str = "sesame_session";
/// Binds pending sign-in requests to the browser that started them.
pub const BROWSER: &str = "sesame_browser";

/// The name on the wire.
pub fn wire_name(name: &str, secure: bool) -> Cow<'_, str> {
    if secure {
        Cow::Owned(format!("__Host-{name}"))
    } else {
        Cow::Borrowed(name)
    }
}

/// The value of cookie `name`, if the request carries it exactly once.
pub fn get<'a>(headers: &'a HeaderMap, name: &str, secure: bool) -> Option<&'a str> {
    let name = wire_name(name, secure);
    let mut found = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(k, _)| *k == name)
        .map(|(_, v)| v);
    let first = found.next()?;
    found.next().is_none().then_some(first)
}

/// A `Set-Cookie` value; `max_age` `None` makes a browser-session cookie, `Some(0)` deletes.
pub fn set(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> HeaderValue {
    let mut s = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Lax",
        wire_name(name, secure)
    );
    if let Some(age) = max_age {
        s.push_str(&format!("; Max-Age={age}"));
    }
    if secure {
        s.push_str("; Secure");
    }
    HeaderValue::from_str(&s).expect("cookie values are base64url")
}

pub fn clear(name: &str, secure: bool) -> HeaderValue {
    set(name, "", Some(0), secure)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(v: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static(v));
        h
    }

    #[test]
    fn reads_among_several() {
        let h = with_cookie("a=1; sesame_session=xyz; b=2");
        assert_eq!(get(&h, SESSION, false), Some("xyz"));
        assert_eq!(get(&h, "c", false), None);
        let c = set(SESSION, "v", None, false);
        assert_eq!(
            c.to_str().unwrap(),
            "sesame_session=v; Path=/; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn https_cookies_are_host_only() {
        let c = set(SESSION, "v", None, true);
        assert_eq!(
            c.to_str().unwrap(),
            "__Host-sesame_session=v; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(
            clear(BROWSER, true)
                .to_str()
                .unwrap()
                .starts_with("__Host-sesame_browser=;")
        );
        // On https, only the prefixed name counts: a sibling sub-domain can set the plain one.
        let h = with_cookie("sesame_session=planted; __Host-sesame_session=ours");
        assert_eq!(get(&h, SESSION, true), Some("ours"));
        assert_eq!(
            get(&with_cookie("sesame_session=planted"), SESSION, true),
            None
        );
    }

    #[test]
    fn a_name_sent_twice_is_absent() {
        let h = with_cookie("sesame_session=a; sesame_session=b");
        assert_eq!(get(&h, SESSION, false), None);
        let mut h = with_cookie("sesame_browser=a");
        h.append(header::COOKIE, HeaderValue::from_static("sesame_browser=b"));
        assert_eq!(get(&h, BROWSER, false), None);
    }
}
