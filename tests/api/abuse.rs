//! What an anonymous client can make the server keep or compute, and what it can plant:
//! parameter sizes, pending requests per browser and per address, throttled captcha and
//! logout pages, the text captcha's answer space, and cookies sent twice.

use sesame::services::throttle::{
    AUTHORIZE_PER_ADDRESS, CAPTCHA_PER_ADDRESS, LOGOUT_PER_ADDRESS, PENDING_PER_BROWSER,
};
use sesame::store::Footprint;
use sesame::web::Locale;

use crate::both_backends;
use crate::helpers::{
    Backend, ClientSpec, PASSWORD, REDIRECT, TestApp, auth_request, forms, location, query,
};

async fn footprint(app: &TestApp) -> Footprint {
    app.state.eph.footprint().await.unwrap()
}

async fn assert_invalid(res: reqwest::Response, what: &str, state: Option<&str>) {
    assert_eq!(res.status(), 303, "{what}");
    let to = location(&res);
    assert!(to.starts_with(REDIRECT), "{what}: {to}");
    let q = query(&to);
    assert_eq!(q["error"], "invalid_request", "{what}");
    assert!(q["error_description"].contains("too long"), "{what}");
    assert_eq!(q.get("state").map(String::as_str), state, "{what}");
}

async fn oversize_parameters_are_refused_and_park_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    let b = app.browser();
    let before = footprint(&app).await;
    let long = |n: usize| "a".repeat(n);
    let claims = format!("{{\"id_token\":{{\"{}\":null}}}}", "x".repeat(3 * 1024));
    let (state_513, nonce_513, hint_257, acr_257, locales_257) =
        (long(513), long(513), long(257), long(257), long(257));
    let scope = format!("openid {}", long(600));
    for (name, value) in [
        ("nonce", nonce_513.as_str()),
        ("login_hint", hint_257.as_str()),
        ("claims", claims.as_str()),
        ("acr_values", acr_257.as_str()),
        ("ui_locales", locales_257.as_str()),
        ("scope", scope.as_str()),
    ] {
        let req = auth_request(&app.issuer, "portal", &[(name, value)]);
        assert_invalid(b.get(&req.url).await, name, Some(&req.state)).await;
    }
    // An oversize state is not echoed back either.
    let req = auth_request(&app.issuer, "portal", &[("state", &state_513)]);
    assert_invalid(b.get(&req.url).await, "state", None).await;
    // A POST near the body limit.
    let req = auth_request(&app.issuer, "portal", &[]);
    let mut form: Vec<(String, String)> = query(&req.url).into_iter().collect();
    form.push(("login_hint".into(), long(60 * 1024)));
    let res = b.post(&app.url("/authorize"), &form).await;
    assert_invalid(res, "POST login_hint", Some(&req.state)).await;

    // At the limits, the request is served.
    let (s512, h256) = (long(512), long(256));
    let req = auth_request(
        &app.issuer,
        "portal",
        &[("state", &s512), ("nonce", &s512), ("login_hint", &h256)],
    );
    let res = b.get(&req.url).await;
    assert!(location(&res).starts_with("/interaction/"));
    let after = footprint(&app).await;
    assert!(
        after.bytes - before.bytes < 4096,
        "only the request within limits was parked: {before:?} → {after:?}"
    );
}

/// Parameters as large as allowed, so that each parked request is as large as it can be.
fn largest_request(issuer: &str) -> String {
    let (s512, h256, a256) = ("s".repeat(512), "h".repeat(256), "a".repeat(256));
    let claims = format!("{{\"id_token\":{{\"{}\":null}}}}", "c".repeat(2048 - 22));
    assert_eq!(claims.len(), 2048);
    auth_request(
        issuer,
        "portal",
        &[
            ("state", &s512),
            ("nonce", &s512),
            ("login_hint", &h256),
            ("acr_values", &a256),
            ("claims", &claims),
        ],
    )
    .url
}

async fn a_burst_from_one_browser_keeps_only_the_latest_requests(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    let b = app.browser();
    let before = footprint(&app).await;
    let mut uids = Vec::new();
    for _ in 0..50 {
        let res = b.get(&largest_request(&app.issuer)).await;
        assert_eq!(res.status(), 303);
        uids.push(location(&res));
    }
    let after = footprint(&app).await;
    let grown = after.bytes - before.bytes;
    eprintln!(
        "50 requests from one browser ({}): {} keys, {grown} bytes more",
        app.state.eph.backend(),
        after.keys - before.keys
    );
    let keep = PENDING_PER_BROWSER as usize;
    // The oldest are gone, the latest still work.
    for (i, uid) in uids.iter().enumerate() {
        let status = b.get(uid).await.status();
        if i < uids.len() - keep {
            assert_eq!(status, 400, "request {i} was dropped");
        } else {
            assert_eq!(status, 200, "request {i} is live");
        }
    }
    // The bound written in docs/ARCHITECTURE.md: 10 requests of at most 6 KiB each (Redis overhead included).
    assert!(
        grown <= keep * 6 * 1024,
        "one browser holds at most {keep} requests: {grown} bytes"
    );
}

async fn fresh_browsers_from_one_address_are_throttled(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    let before = footprint(&app).await;
    // No cookie jar: every request is a new browser.
    for i in 0..AUTHORIZE_PER_ADDRESS.0 {
        let res = app
            .http
            .get(largest_request(&app.issuer))
            .send()
            .await
            .unwrap();
        assert!(location(&res).starts_with("/interaction/"), "request {i}");
    }
    let after = footprint(&app).await;
    eprintln!(
        "{} fresh browsers from one address ({}): {} keys, {} bytes more",
        AUTHORIZE_PER_ADDRESS.0,
        app.state.eph.backend(),
        after.keys - before.keys,
        after.bytes - before.bytes
    );
    let res = app
        .http
        .get(largest_request(&app.issuer))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("location").is_none());
    assert!(res.headers().contains_key("retry-after"));
    assert!(res.text().await.unwrap().contains("Trop de demandes"));
    assert_eq!(
        footprint(&app).await.keys,
        after.keys,
        "a refused request parks nothing"
    );
    // The requests that need no parking (an error for the portal) still get their answer.
    let req = auth_request(&app.issuer, "portal", &[("prompt", "none")]);
    let res = app.http.get(&req.url).send().await.unwrap();
    assert_eq!(query(&location(&res))["error"], "login_required");
}

async fn captcha_and_logout_pages_are_throttled_per_address(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for i in 0..CAPTCHA_PER_ADDRESS.0 {
        let res = app
            .http
            .get(app.url("/password/forgot"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "captcha page {i}");
    }
    let keys = footprint(&app).await.keys;
    let res = app
        .http
        .get(app.url("/password/forgot"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert!(res.text().await.unwrap().contains("Trop de demandes"));
    assert_eq!(footprint(&app).await.keys, keys, "no captcha drawn");

    for i in 0..LOGOUT_PER_ADDRESS.0 {
        let res = app.http.get(app.url("/logout")).send().await.unwrap();
        assert_eq!(res.status(), 200, "logout page {i}");
    }
    let keys = footprint(&app).await.keys;
    let res = app.http.get(app.url("/logout")).send().await.unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(footprint(&app).await.keys, keys, "nothing parked");
    // A logout's state is bounded like an authorization request's.
    let res = app
        .http
        .get(app.url(&format!("/logout?state={}", "s".repeat(513))))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

async fn the_text_captcha_has_a_large_answer_space(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let mut answers = std::collections::HashSet::new();
    let mut first = None;
    for _ in 0..50 {
        let c = app
            .state
            .new_captcha(Locale::Fr, true)
            .await
            .unwrap()
            .expect("a captcha");
        let question = c.question.clone().expect("a question");
        let answer = app
            .state
            .eph
            .get(&format!("captcha:{}", c.id))
            .await
            .unwrap()
            .unwrap();
        assert!(answer.len() >= 6, "{question} → {answer}");
        assert!(answers.insert(answer.clone()), "{answer} drawn twice");
        first.get_or_insert((c.id, question, answer));
    }
    let (id, question, answer) = first.unwrap();
    assert!(question.starts_with("Recopiez"), "{question}");
    // A wrong answer fails, and spends the challenge: the right one comes too late.
    let wrong = if answer.starts_with('2') {
        "3".repeat(answer.len())
    } else {
        "2".repeat(answer.len())
    };
    assert!(!app.state.check_captcha(&id, &wrong).await.unwrap());
    assert!(!app.state.check_captcha(&id, &answer).await.unwrap());
    // The right one passes, typed with spaces or in capitals as a person may.
    let c = app
        .state
        .new_captcha(Locale::En, true)
        .await
        .unwrap()
        .unwrap();
    assert!(c.question.as_deref().unwrap().starts_with("Type the"));
    let answer = app
        .state
        .eph
        .get(&format!("captcha:{}", c.id))
        .await
        .unwrap()
        .unwrap();
    let typed: String = answer
        .chars()
        .flat_map(|ch| [ch.to_ascii_uppercase(), ' '])
        .collect();
    assert!(app.state.check_captcha(&c.id, &typed).await.unwrap());
}

fn set_cookie(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

fn cookie_value(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|p| p.split_once('='))
        .unwrap()
        .1
        .to_owned()
}

async fn a_cookie_sent_twice_counts_as_absent(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    app.create_user("alice").await;
    let get = |url: String, cookie: String| {
        let http = app.http.clone();
        async move { http.get(url).header("cookie", cookie).send().await.unwrap() }
    };
    // Sign in by hand to learn both cookies.
    let res = app
        .http
        .get(auth_request(&app.issuer, "portal", &[]).url)
        .send()
        .await
        .unwrap();
    let browser = cookie_value(&set_cookie(&res, "sesame_browser").unwrap());
    let interaction = app.url(&location(&res));
    let mine = format!("sesame_browser={browser}");
    let html = get(interaction.clone(), mine.clone())
        .await
        .text()
        .await
        .unwrap();
    let form = &forms(&html)[0];
    let mut fields = form.hidden.clone();
    fields.push(("username".into(), "alice".into()));
    fields.push(("password".into(), PASSWORD.into()));
    let res = app
        .http
        .post(app.url(&form.action))
        .header("cookie", &mine)
        .form(&fields)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    let session = cookie_value(&set_cookie(&res, "sesame_session").unwrap());

    // A planted second cookie, in either order, leaves the browser without one.
    let planted = "A".repeat(43);
    let silent = || auth_request(&app.issuer, "portal", &[("prompt", "none")]).url;
    let res = get(silent(), format!("sesame_session={session}")).await;
    assert!(
        query(&location(&res)).contains_key("code"),
        "the session works"
    );
    for cookie in [
        format!("sesame_session={session}; sesame_session={planted}"),
        format!("sesame_session={planted}; sesame_session={session}"),
    ] {
        let res = get(silent(), cookie).await;
        assert_eq!(query(&location(&res))["error"], "login_required");
    }

    let res = get(auth_request(&app.issuer, "portal", &[]).url, mine.clone()).await;
    let interaction = app.url(&location(&res));
    assert_eq!(get(interaction.clone(), mine.clone()).await.status(), 200);
    for cookie in [
        format!("{mine}; sesame_browser={planted}"),
        format!("sesame_browser={planted}; {mine}"),
    ] {
        assert_eq!(get(interaction.clone(), cookie).await.status(), 400);
    }
}

async fn https_cookies_are_host_only(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.issuer = s.issuer.replace("http://", "https://");
    })
    .await;
    app.create_client(ClientSpec::portal("portal")).await;
    // The listener itself is plain HTTP; the issuer only says where the public face is.
    let url = auth_request(&app.issuer, "portal", &[])
        .url
        .replace("https://", "http://");
    let res = app.http.get(url).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let c = set_cookie(&res, "__Host-sesame_browser").expect("a __Host- cookie");
    assert!(c.contains("; Secure"), "{c}");
    assert!(c.contains("; Path=/;"), "{c}");
    assert!(!c.to_ascii_lowercase().contains("domain="), "{c}");
    assert!(set_cookie(&res, "sesame_browser").is_none());
}

both_backends!(
    oversize_parameters_are_refused_and_park_nothing,
    a_burst_from_one_browser_keeps_only_the_latest_requests,
    fresh_browsers_from_one_address_are_throttled,
    captcha_and_logout_pages_are_throttled_per_address,
    the_text_captcha_has_a_large_answer_space,
    a_cookie_sent_twice_counts_as_absent,
    https_cookies_are_host_only,
);
