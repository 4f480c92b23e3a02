//! Hostile input at every endpoint and hosted form, on both backends: NUL and other control
//! bytes, invalid UTF-8 and oversize values in query strings, form bodies, paths and Basic
//! credentials. PostgreSQL refuses a NUL in a string where SQLite stores it, so these run on
//! both: the answer is always a 4xx in the endpoint's format, never a 5xx, and nothing is
//! written. Then a property test throws arbitrary bytes at the same places on PostgreSQL.

use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use sesame::store::db::DbError;

use crate::both_backends;
use crate::helpers::{
    Backend, Browser, ClientSpec, POST_LOGOUT, REDIRECT, TestApp, auth_request, location,
};

/// Values as they appear percent-encoded on the wire (so that invalid UTF-8 can be sent).
const HOSTILE: &[&str] = &[
    "a%00b",
    "%00",
    "a%01b",
    "a%1Fb",
    "a%7Fb",
    "a%0D%0Ab",
    "%C2%80",
    "a%FFb",
    "%C3%28",
    "%ED%A0%80",
    "%F4%90%80%80",
    "%E2%80%AE",
    "a%09b",
];

/// Raw bytes for places that are not percent-decoded by the transport (Basic credentials).
fn hostile_bytes() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = vec![
        b"a\0b".to_vec(),
        b"\0".to_vec(),
        b"a\x01b".to_vec(),
        b"a\x7fb".to_vec(),
        b"\xc2\x80".to_vec(),
        b"a\xffb".to_vec(),
        b"a%00b".to_vec(),
        b"a%01b".to_vec(),
        b"a%FFb".to_vec(),
        vec![b'a'; 300],
    ];
    v.push(b"c1\0".to_vec());
    v
}

fn long() -> String {
    "a".repeat(300)
}

/// Every request comes from a new address (the server trusts loopback's `X-Forwarded-For`), so
/// the per-address limits never answer first and hide the path to the stores.
pub struct Attacker<'a> {
    pub app: &'a TestApp,
    n: AtomicU32,
}

impl<'a> Attacker<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            n: AtomicU32::new(1),
        }
    }

    fn addr(&self) -> String {
        let n = self.n.fetch_add(1, Ordering::Relaxed);
        format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
    }

    pub async fn get(&self, path_and_query: &str) -> reqwest::Response {
        self.app
            .http
            .get(self.app.url(path_and_query))
            .header("x-forwarded-for", self.addr())
            .send()
            .await
            .unwrap()
    }

    /// A form body written by hand (already encoded), with optional raw Basic credentials.
    pub async fn post(
        &self,
        path: &str,
        body: &str,
        basic: Option<&[u8]>,
        browser: Option<&Browser>,
    ) -> reqwest::Response {
        let http = browser.map_or(&self.app.http, |b| &b.http);
        let mut req = http
            .post(self.app.url(path))
            .header("x-forwarded-for", self.addr())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.to_owned());
        if let Some(raw) = basic {
            req = req.header("authorization", format!("Basic {}", STANDARD.encode(raw)));
        }
        req.send().await.unwrap()
    }
}

pub fn hostile_app_settings(s: &mut sesame::config::Settings) {
    s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
}

/// Not a 5xx; returns the status and the body.
async fn no_5xx(res: reqwest::Response, what: &str) -> (u16, String, String) {
    let status = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned())
        .unwrap_or_default();
    let body = res.text().await.unwrap_or_default();
    assert!(status < 500, "{what}: {status} {body}");
    (status, ct, body)
}

/// A 4xx JSON error whose code is one of `codes`.
async fn oauth_error(res: reqwest::Response, codes: &[&str], what: &str) {
    let (status, ct, body) = no_5xx(res, what).await;
    assert!((400..500).contains(&status), "{what}: {status} {body}");
    assert!(ct.starts_with("application/json"), "{what}: {ct}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        codes.contains(&v["error"].as_str().unwrap_or("")),
        "{what}: {body}"
    );
}

/// A 4xx HTML error page (no redirect to a portal).
async fn error_page(res: reqwest::Response, what: &str) {
    assert!(location(&res).is_empty(), "{what}: redirected");
    let (status, ct, body) = no_5xx(res, what).await;
    assert!((400..500).contains(&status), "{what}: {status} {body}");
    assert!(ct.starts_with("text/html"), "{what}: {ct}");
}

/// What the database holds that a request could have added.
async fn written(app: &TestApp) -> (usize, usize, Vec<String>) {
    let clients = app.state.db.clients().await.unwrap().len();
    let audit = app.state.db.recent_audit(1000).await.unwrap();
    let odd: Vec<String> = audit
        .iter()
        .filter(|r| {
            r.client_id
                .iter()
                .chain(r.user_id.iter())
                .chain(std::iter::once(&r.detail))
                .any(|s| s.chars().any(char::is_control))
        })
        .map(|r| format!("{r:?}"))
        .collect();
    (clients, audit.len(), odd)
}

async fn hostile_input_is_refused_everywhere(backend: Backend) {
    let app = TestApp::spawn_with(backend, hostile_app_settings).await;
    app.create_user("alice").await;
    let s1 = app.create_client(ClientSpec::portal("c1")).await.unwrap();
    let mut public = ClientSpec::portal("pub");
    public.auth_method = sesame::domain::TokenAuthMethod::None;
    app.create_client(public).await;
    let before = written(&app).await;
    let x = Attacker::new(&app);
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let redirect = enc(REDIRECT);
    let long = long();
    let mut values: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
    values.push(long.clone());

    for h in &values {
        // /authorize: the client and its redirect URI are checked first: an HTML page.
        let q = format!("response_type=code&scope=openid&client_id={h}&redirect_uri={redirect}");
        error_page(
            x.get(&format!("/authorize?{q}")).await,
            &format!("GET authorize client_id={h}"),
        )
        .await;
        error_page(
            x.post("/authorize", &q, None, None).await,
            &format!("POST authorize client_id={h}"),
        )
        .await;
        let q = format!("response_type=code&scope=openid&client_id=c1&redirect_uri={h}");
        error_page(
            x.get(&format!("/authorize?{q}")).await,
            &format!("authorize redirect_uri={h}"),
        )
        .await;
        // Every other parameter: an error to the portal or a sign-in page, never a 5xx.
        for name in [
            "state",
            "nonce",
            "login_hint",
            "scope",
            "claims",
            "acr_values",
            "ui_locales",
            "prompt",
            "max_age",
            "code_challenge",
            "code_challenge_method",
            "id_token_hint",
            "response_type",
            "response_mode",
            "display",
            "resource",
        ] {
            let req = auth_request(&app.issuer, "c1", &[(name, "")]);
            no_5xx(
                x.get(&format!(
                    "{}&{name}={h}",
                    req.url.trim_start_matches(&app.issuer)
                ))
                .await,
                &format!("authorize {name}={h}"),
            )
            .await;
        }

        // /token: the client's identifier in the form, with and without a secret.
        for body in [
            format!("grant_type=authorization_code&code=x&client_id={h}"),
            format!("grant_type=authorization_code&code=x&client_id={h}&client_secret=s"),
            format!("grant_type=client_credentials&client_id={h}&client_secret=s"),
        ] {
            oauth_error(
                x.post("/token", &body, None, None).await,
                &["invalid_client", "invalid_request"],
                &format!("token {body}"),
            )
            .await;
        }
        // An authenticated client, hostile grant parameters.
        for name in [
            "grant_type",
            "code",
            "redirect_uri",
            "code_verifier",
            "refresh_token",
            "scope",
            "resource",
            "client_id",
        ] {
            for grant in ["authorization_code", "refresh_token", "client_credentials"] {
                let body = if name == "grant_type" {
                    format!("grant_type={h}&code=x")
                } else {
                    format!(
                        "grant_type={grant}&code=x&refresh_token=y&redirect_uri={redirect}&code_verifier=zzz&{name}={h}"
                    )
                };
                let creds = format!("c1:{s1}");
                let res = x.post("/token", &body, Some(creds.as_bytes()), None).await;
                let (status, _, text) = no_5xx(res, &format!("token {body}")).await;
                assert!(
                    (400..500).contains(&status),
                    "token {body}: {status} {text}"
                );
            }
            // The public client (no secret) too.
            let body = format!(
                "grant_type=authorization_code&client_id=pub&code=x&redirect_uri={redirect}&code_verifier=zzz&{name}={h}"
            );
            no_5xx(
                x.post("/token", &body, None, None).await,
                &format!("public token {body}"),
            )
            .await;
        }
        // Introspection and revocation: an authenticated client, a hostile token.
        for path in ["/introspect", "/revoke"] {
            for body in [format!("token={h}"), format!("token=x&token_type_hint={h}")] {
                let creds = format!("c1:{s1}");
                no_5xx(
                    x.post(path, &body, Some(creds.as_bytes()), None).await,
                    &format!("{path} {body}"),
                )
                .await;
            }
            oauth_error(
                x.post(path, &format!("token=x&client_id={h}"), None, None)
                    .await,
                &["invalid_client", "invalid_request"],
                &format!("{path} client_id={h}"),
            )
            .await;
            oauth_error(
                x.post(
                    path,
                    &format!("token=x&client_id={h}&client_secret=s"),
                    None,
                    None,
                )
                .await,
                &["invalid_client", "invalid_request"],
                &format!("{path} client_id={h} + secret"),
            )
            .await;
        }
        // Userinfo with a hostile token in the body.
        no_5xx(
            x.post("/userinfo", &format!("access_token={h}"), None, None)
                .await,
            &format!("userinfo {h}"),
        )
        .await;
        // Logout: the portal's identifier picks where to go back to.
        let post_logout = enc(POST_LOGOUT);
        for q in [
            format!("client_id={h}&post_logout_redirect_uri={post_logout}"),
            format!("client_id=c1&post_logout_redirect_uri={h}"),
            format!("id_token_hint={h}&post_logout_redirect_uri={post_logout}"),
            format!("client_id=c1&post_logout_redirect_uri={post_logout}&state={h}"),
            format!("csrf_token={h}"),
        ] {
            no_5xx(
                x.get(&format!("/logout?{q}")).await,
                &format!("GET logout {q}"),
            )
            .await;
            no_5xx(
                x.post("/logout", &q, None, None).await,
                &format!("POST logout {q}"),
            )
            .await;
        }
        no_5xx(
            x.post("/logout/confirm", &format!("csrf_token={h}"), None, None)
                .await,
            &format!("logout confirm {h}"),
        )
        .await;
        // Paths that name a pending request, a link or a card.
        for path in [
            format!("/interaction/{h}"),
            format!("/interaction/{h}/password"),
            format!("/interaction/{h}/totp"),
            format!("/interaction/{h}/passkey"),
            format!("/interaction/{h}/certificate?token={h}"),
            format!("/certificate/{h}"),
            format!("/password/reset/{h}"),
            format!("/password/forgot?uid={h}"),
        ] {
            no_5xx(x.get(&path).await, &format!("GET {path}")).await;
        }
        for path in [
            format!("/interaction/{h}/login"),
            format!("/interaction/{h}/consent"),
            format!("/interaction/{h}/cancel"),
            format!("/password/reset/{h}"),
        ] {
            no_5xx(
                x.post(&path, "csrf_token=x&password=y", None, None).await,
                &format!("POST {path}"),
            )
            .await;
        }
    }

    // Basic credentials holding raw bytes, at every endpoint that authenticates clients.
    for raw in hostile_bytes() {
        for secret in [b"s".to_vec(), raw.clone()] {
            let mut creds = raw.clone();
            creds.push(b':');
            creds.extend_from_slice(&secret);
            let what = String::from_utf8_lossy(&creds).into_owned();
            for (path, body) in [
                ("/token", "grant_type=authorization_code&code=x"),
                ("/token", "grant_type=client_credentials"),
                ("/introspect", "token=x"),
                ("/revoke", "token=x"),
            ] {
                oauth_error(
                    x.post(path, body, Some(&creds), None).await,
                    &["invalid_client", "invalid_request"],
                    &format!("{path} Basic {what:?}"),
                )
                .await;
            }
        }
        // A valid client id with a hostile secret.
        let mut creds = b"c1:".to_vec();
        creds.extend_from_slice(&raw);
        oauth_error(
            x.post(
                "/token",
                "grant_type=client_credentials",
                Some(&creds),
                None,
            )
            .await,
            &["invalid_client", "invalid_request"],
            "token Basic c1 + hostile secret",
        )
        .await;
    }

    // The hosted forms of a live pending request.
    let browser = app.browser();
    let res = browser.get(&auth_request(&app.issuer, "c1", &[]).url).await;
    let page = location(&res);
    assert!(page.starts_with("/interaction/"), "{page}");
    for h in &values {
        for (path, body) in [
            (format!("{page}/login"), format!("username={h}&password=x")),
            (
                format!("{page}/login"),
                format!("username=alice&password={h}"),
            ),
            (
                format!("{page}/login"),
                format!("username=alice&password=x&csrf_token={h}"),
            ),
            (
                format!("{page}/consent"),
                format!("csrf_token={h}&decision=allow"),
            ),
            (format!("{page}/cancel"), format!("csrf_token={h}")),
            (
                format!("{page}/password"),
                format!("csrf_token={h}&password={h}&confirm={h}"),
            ),
            (format!("{page}/totp"), format!("csrf_token={h}&code={h}")),
            (
                format!("{page}/passkey"),
                format!("csrf_token={h}&credential={h}"),
            ),
            (
                "/password/forgot".to_owned(),
                format!("username={h}&captcha={h}&captcha_id={h}&form_token={h}"),
            ),
            ("/password/forgot".to_owned(), format!("email={h}&uid={h}")),
        ] {
            no_5xx(
                x.post(&path, &body, None, Some(&browser)).await,
                &format!("POST {path} {body}"),
            )
            .await;
        }
        no_5xx(
            x.get(&format!("{page}?ui_locales={h}")).await,
            &format!("GET {page}?ui_locales={h}"),
        )
        .await;
    }
    // The account pages without a session, hostile fields.
    for path in [
        "/account/totp",
        "/account/totp/confirm",
        "/account/totp/remove",
        "/account/password",
        "/account/passkeys",
        "/account/passkeys/finish",
        "/account/passkeys/remove",
        "/account/certificates/remove",
    ] {
        no_5xx(
            x.post(
                path,
                "csrf_token=a%00b&id=a%00b&code=%00&name=%FF",
                None,
                None,
            )
            .await,
            path,
        )
        .await;
    }

    let after = written(&app).await;
    assert_eq!(after.0, before.0, "no client was added");
    assert!(
        after.2.is_empty(),
        "audit rows hold control characters: {:?}",
        after.2
    );
    // Refused requests write nothing; failed sign-ins with a valid identifier are audited.
    let events = app.audit_events().await;
    assert!(
        events.iter().all(|e| e == "login_failed"),
        "unexpected audit events: {events:?}"
    );
}

/// A client registered with a NUL byte cannot exist: the checks are the same at creation.
async fn identifiers_with_control_characters_cannot_be_registered(backend: Backend) {
    let app = TestApp::spawn(backend.clone()).await;
    for id in ["a\0b", "a\u{1}b", "a\u{80}b", &"a".repeat(256)] {
        assert!(sesame::domain::ClientId::parse(id).is_err(), "{id:?}");
    }
    // Second line: a value the database cannot hold is the caller's error, not a failure.
    let db = &app.state.db;
    let r = db.user_by_id("a\0b").await;
    assert!(matches!(r, Ok(None) | Err(DbError::Refused(_))), "{r:?}");
    let r = db
        .audit(sesame::store::db::audit::AuditEvent {
            client_id: Some("a\0b"),
            ..sesame::store::db::audit::AuditEvent::new(sesame::domain::audit::Event::KeysRotated)
        })
        .await;
    assert!(matches!(r, Ok(()) | Err(DbError::Refused(_))), "{r:?}");
    if matches!(backend, Backend::External { .. }) {
        assert!(matches!(
            db.user_by_id("\0").await,
            Err(DbError::Refused(_))
        ));
    }
}

both_backends!(
    hostile_input_is_refused_everywhere,
    identifiers_with_control_characters_cannot_be_registered,
);

/// Arbitrary bytes, biased towards the ones that hurt: NUL, controls, lone UTF-8 bytes.
mod property {
    use std::time::Instant;

    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

    use super::{Attacker, hostile_app_settings};
    use crate::helpers::{Backend, ClientSpec, REDIRECT, TestApp, auth_request, location};

    const CASES: u32 = 96;

    fn bytes() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                3 => any::<u8>(),
                1 => Just(0u8),
                1 => 0x01u8..0x20,
                1 => 0x80u8..=0xff,
                2 => proptest::char::range('a', 'z').prop_map(|c| c as u8),
            ],
            0..80,
        )
    }

    /// Every byte percent-encoded, so that exactly these bytes reach the server's decoder.
    fn pct(b: &[u8]) -> String {
        b.iter().map(|x| format!("%{x:02X}")).collect()
    }

    fn runner() -> TestRunner {
        let config = Config {
            cases: CASES,
            failure_persistence: None,
            max_shrink_iters: 64,
            ..Config::default()
        };
        TestRunner::new_with_rng(config, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
    }

    fn ok(status: u16, what: &str) -> Result<(), TestCaseError> {
        prop_assert!(status < 500, "{}: {}", what, status);
        Ok(())
    }

    /// One server on PostgreSQL + Redis; each property runs its cases against it.
    #[test]
    fn arbitrary_bytes_never_get_a_5xx_on_postgres() {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let Some(backend) = rt.block_on(Backend::external()) else {
            return;
        };
        let (app, s1) = rt.block_on(async {
            let app = TestApp::spawn_with(backend, hostile_app_settings).await;
            app.create_user("alice").await;
            let s1 = app.create_client(ClientSpec::portal("c1")).await.unwrap();
            (app, s1)
        });
        let x = Attacker::new(&app);
        let redirect: String = url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect();
        let started = Instant::now();

        // client_id at /authorize (query and form), /token (form and Basic), /introspect.
        runner()
            .run(&(bytes(), bytes()), |(id, secret)| {
                rt.block_on(async {
                    let q = format!(
                        "response_type=code&scope=openid&client_id={}&redirect_uri={redirect}",
                        pct(&id)
                    );
                    ok(
                        x.get(&format!("/authorize?{q}")).await.status().as_u16(),
                        "GET /authorize",
                    )?;
                    ok(
                        x.post("/authorize", &q, None, None).await.status().as_u16(),
                        "POST /authorize",
                    )?;
                    let body = format!(
                        "grant_type=authorization_code&code=x&client_id={}&client_secret={}",
                        pct(&id),
                        pct(&secret)
                    );
                    ok(
                        x.post("/token", &body, None, None).await.status().as_u16(),
                        "form /token",
                    )?;
                    let mut creds = id.clone();
                    creds.push(b':');
                    creds.extend_from_slice(&secret);
                    ok(
                        x.post(
                            "/token",
                            "grant_type=client_credentials",
                            Some(&creds),
                            None,
                        )
                        .await
                        .status()
                        .as_u16(),
                        "Basic /token",
                    )?;
                    ok(
                        x.post("/introspect", "token=x", Some(&creds), None)
                            .await
                            .status()
                            .as_u16(),
                        "Basic /introspect",
                    )?;
                    ok(
                        x.get(&format!(
                            "/logout?client_id={}&post_logout_redirect_uri={redirect}",
                            pct(&id)
                        ))
                        .await
                        .status()
                        .as_u16(),
                        "/logout",
                    )
                })
            })
            .unwrap();

        // redirect_uri at /authorize, for a registered client.
        runner()
            .run(&bytes(), |uri| {
                rt.block_on(async {
                    let q = format!(
                        "response_type=code&scope=openid&client_id=c1&redirect_uri={}",
                        pct(&uri)
                    );
                    ok(
                        x.get(&format!("/authorize?{q}")).await.status().as_u16(),
                        "redirect_uri",
                    )
                })
            })
            .unwrap();

        // username (and password) at the sign-in form of a live pending request.
        let browser = app.browser();
        let page = rt.block_on(async {
            location(&browser.get(&auth_request(&app.issuer, "c1", &[]).url).await)
        });
        assert!(page.starts_with("/interaction/"), "{page}");
        runner()
            .run(&(bytes(), bytes()), |(user, password)| {
                rt.block_on(async {
                    let body = format!("username={}&password={}", pct(&user), pct(&password));
                    ok(
                        x.post(&format!("{page}/login"), &body, None, Some(&browser))
                            .await
                            .status()
                            .as_u16(),
                        "sign-in",
                    )?;
                    let body = format!("username={}&captcha=x", pct(&user));
                    ok(
                        x.post("/password/forgot", &body, None, None)
                            .await
                            .status()
                            .as_u16(),
                        "forgot",
                    )
                })
            })
            .unwrap();

        // The token endpoint's parameters, for an authenticated client.
        let names = prop_oneof![
            Just("grant_type"),
            Just("code"),
            Just("redirect_uri"),
            Just("code_verifier"),
            Just("refresh_token"),
            Just("scope"),
            Just("resource"),
            Just("client_id"),
        ];
        let grants = prop_oneof![
            Just("authorization_code"),
            Just("refresh_token"),
            Just("client_credentials")
        ];
        let creds = format!("c1:{s1}");
        runner()
            .run(&(names, grants, bytes()), |(name, grant, value)| {
                rt.block_on(async {
                    let mut pairs = vec![
                        ("grant_type", grant.to_owned()),
                        ("code", "x".to_owned()),
                        ("refresh_token", "y".to_owned()),
                        ("redirect_uri", redirect.clone()),
                        ("code_verifier", "z".repeat(43)),
                    ];
                    pairs.retain(|(k, _)| *k != name);
                    pairs.push((name, pct(&value)));
                    let body = pairs
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join("&");
                    ok(
                        x.post("/token", &body, Some(creds.as_bytes()), None)
                            .await
                            .status()
                            .as_u16(),
                        "token parameters",
                    )?;
                    ok(
                        x.post(
                            "/revoke",
                            &format!("token={}", pct(&value)),
                            Some(creds.as_bytes()),
                            None,
                        )
                        .await
                        .status()
                        .as_u16(),
                        "revoke",
                    )
                })
            })
            .unwrap();
        eprintln!(
            "proptest: 4 properties x {CASES} cases on PostgreSQL + Redis in {:.1?}",
            started.elapsed()
        );
        drop(app);
    }
}
