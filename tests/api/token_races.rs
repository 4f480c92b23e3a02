//! Attacks on the token endpoint that need timing or a second party: a refresh loop racing a
//! revocation (RFC 7009, password reset, reuse detection), a leaked code presented by the
//! wrong client before the right one, a disabled account's tokens at introspection, and an
//! essential `acr` in the `claims` parameter.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::both_backends;
use crate::helpers::{
    AuthRequest, Backend, Browser, ClientSpec, PASSWORD, REDIRECT, TestApp, auth_request, location,
    query,
};

const ROUNDS: usize = 20;
/// Refreshes the loop may still make once the attack has returned (in flight when it hit).
const GRACE: usize = 3;

struct Portal {
    id: &'static str,
    secret: String,
}

async fn post(app: &TestApp, path: &str, client: &Portal, form: &[(&str, &str)]) -> (u16, Value) {
    let res = app
        .http
        .post(app.url(path))
        .basic_auth(client.id, Some(&client.secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn refresh(app: &TestApp, c: &Portal, rt: &str) -> (u16, Value) {
    post(
        app,
        "/token",
        c,
        &[("grant_type", "refresh_token"), ("refresh_token", rt)],
    )
    .await
}

async fn active(app: &TestApp, c: &Portal, token: &str) -> bool {
    let (s, v) = post(app, "/introspect", c, &[("token", token)]).await;
    assert_eq!(s, 200, "{v}");
    v["active"] == true
}

/// A code for `client` through `browser` (signing in when its session is gone).
async fn code_for(
    app: &TestApp,
    browser: &Browser,
    client: &str,
    extra: &[(&str, &str)],
) -> (String, AuthRequest) {
    let req = auth_request(&app.issuer, client, extra);
    let mut res = browser.get(&req.url).await;
    if location(&res).starts_with("/interaction/") {
        res = browser.sign_in(&req.url, "alice", PASSWORD).await;
    }
    let q = query(&location(&res));
    (q.get("code").cloned().expect("a code"), req)
}

/// Offline tokens: no SSO session to end them, only their family's revocation.
async fn offline_tokens(app: &TestApp, browser: &Browser, c: &Portal) -> Value {
    let (code, req) = code_for(app, browser, c.id, &[("scope", "openid offline_access")]).await;
    let t = app.redeem(c.id, &c.secret, &code, &req.verifier).await;
    assert!(
        t["scope"].as_str().unwrap().contains("offline_access"),
        "{t}"
    );
    t
}

async fn setup(backend: Backend) -> (TestApp, Portal, String) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("alice").await;
    let secret = app.create_client(ClientSpec::portal("c1")).await.unwrap();
    (app, Portal { id: "c1", secret }, user.id)
}

/// One round: a portal refreshes in a loop; after `before` rotations (and a short pause, so
/// that it lands during one), `attack` runs. Then neither the last refresh token the loop held
/// nor the last access token it got may still work.
async fn round<F: std::future::Future<Output = ()>>(
    app: &TestApp,
    c: &Portal,
    first: &Value,
    before: usize,
    pause: Duration,
    attack: F,
) {
    let rotations = AtomicUsize::new(0);
    let attacked = AtomicBool::new(false);
    let stopped = AtomicBool::new(false);
    let last = std::sync::Mutex::new((
        first["access_token"].as_str().unwrap().to_owned(),
        first["refresh_token"].as_str().unwrap().to_owned(),
    ));
    let looping = async {
        let mut after = 0;
        loop {
            let rt = last.lock().unwrap().1.clone();
            let (s, v) = refresh(app, c, &rt).await;
            if s != 200 {
                assert_eq!(
                    (s, v["error"].as_str()),
                    (400, Some("invalid_grant")),
                    "{v}"
                );
                break;
            }
            *last.lock().unwrap() = (
                v["access_token"].as_str().unwrap().to_owned(),
                v["refresh_token"].as_str().unwrap().to_owned(),
            );
            rotations.fetch_add(1, Ordering::SeqCst);
            if attacked.load(Ordering::SeqCst) {
                after += 1;
                if after > GRACE {
                    break;
                }
            }
        }
        stopped.store(true, Ordering::SeqCst);
    };
    let attacking = async {
        while rotations.load(Ordering::SeqCst) < before && !stopped.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(pause).await;
        attack.await;
        attacked.store(true, Ordering::SeqCst);
    };
    tokio::join!(looping, attacking);
    let (at, rt) = last.lock().unwrap().clone();
    let (s, v) = refresh(app, c, &rt).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_grant")),
        "the family outlived its revocation after {} rotations: {}",
        rotations.load(Ordering::SeqCst),
        if s == 200 { "a fresh pair" } else { "an error" }
    );
    assert!(
        !active(app, c, &at).await,
        "the last access token outlived its family's revocation"
    );
}

fn timing(i: usize) -> (usize, Duration) {
    (1 + i % 3, Duration::from_micros((i as u64 * 1_300) % 6_000))
}

async fn a_refresh_loop_racing_revoke_leaves_no_live_token(backend: Backend) {
    let (app, c, _) = setup(backend).await;
    let b = app.browser();
    for i in 0..ROUNDS {
        let first = offline_tokens(&app, &b, &c).await;
        // Any member of the family will do: the first one, spent by the loop.
        let member = first["refresh_token"].as_str().unwrap().to_owned();
        let (before, pause) = timing(i);
        round(&app, &c, &first, before, pause, async {
            let (s, v) = post(
                &app,
                "/revoke",
                &c,
                &[("token", &member), ("token_type_hint", "refresh_token")],
            )
            .await;
            assert_eq!(s, 200, "{v}");
        })
        .await;
    }
}

async fn a_refresh_loop_racing_a_password_reset_leaves_no_live_token(backend: Backend) {
    let (app, c, user_id) = setup(backend).await;
    let b = app.browser();
    for i in 0..ROUNDS {
        // The reset ended the session: this signs in again.
        let first = offline_tokens(&app, &b, &c).await;
        let (before, pause) = timing(i);
        round(&app, &c, &first, before, pause, async {
            // What a completed reset (and `user disable`) does to the account's tokens.
            app.state.end_all_sessions(&user_id).await.unwrap();
        })
        .await;
    }
}

async fn a_refresh_loop_racing_reuse_detection_leaves_no_live_token(backend: Backend) {
    let (app, c, _) = setup(backend).await;
    let b = app.browser();
    for i in 0..ROUNDS {
        let first = offline_tokens(&app, &b, &c).await;
        let stolen = first["refresh_token"].as_str().unwrap().to_owned();
        let (before, pause) = timing(i);
        round(&app, &c, &first, before, pause, async {
            // The thief replays the token the portal has already rotated.
            let (s, v) = refresh(&app, &c, &stolen).await;
            assert_eq!(
                (s, v["error"].as_str()),
                (400, Some("invalid_grant")),
                "{v}"
            );
        })
        .await;
    }
    assert!(
        app.audit_events()
            .await
            .contains(&"refresh_token_replayed".to_string())
    );
}

/// Someone holding a leaked code (another portal, or without the verifier) cannot burn it.
async fn a_leaked_code_presented_wrongly_is_still_redeemed_by_its_portal(backend: Backend) {
    let (app, c, _) = setup(backend).await;
    let other = Portal {
        id: "c2",
        secret: app.create_client(ClientSpec::portal("c2")).await.unwrap(),
    };
    let b = app.browser();
    let (code, req) = code_for(&app, &b, "c1", &[]).await;
    let wrong_verifier = "w".repeat(43);
    let attempts: [(&Portal, &str, &str); 4] = [
        (&other, REDIRECT, &req.verifier),
        (&c, REDIRECT, &wrong_verifier),
        (&c, "https://portal.example.fr/other", &req.verifier),
        (&c, REDIRECT, ""),
    ];
    for (who, redirect, verifier) in attempts {
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
        ];
        if !verifier.is_empty() {
            form.push(("code_verifier", verifier));
        }
        let (s, v) = post(&app, "/token", who, &form).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("invalid_grant")),
            "{v}"
        );
    }
    let t = app.redeem("c1", &c.secret, &code, &req.verifier).await;
    let at = t["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("the portal's code was burnt by the wrong attempts: {t}"));
    assert!(active(&app, &c, at).await);
    // Once redeemed, the code in another client's hands revokes nothing (second review, N3).
    let (s, v) = post(
        &app,
        "/token",
        &other,
        &[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", req.verifier.as_str()),
        ],
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (400, Some("invalid_grant")));
    assert!(
        active(&app, &c, at).await,
        "another client cannot end the grant"
    );
    // Single use still holds: a replay fails and revokes what the code produced.
    let again = app.redeem("c1", &c.secret, &code, &req.verifier).await;
    assert_eq!(again["error"], "invalid_grant");
    assert!(!active(&app, &c, at).await);
}

/// An account disabled in the database (`user disable` from another host, whose reach into
/// the ephemeral store failed or could not happen) has no active token within the cache's 2 s.
async fn a_disabled_accounts_tokens_are_inactive_at_introspection(backend: Backend) {
    let (app, c, user_id) = setup(backend).await;
    let b = app.browser();
    let t = offline_tokens(&app, &b, &c).await;
    let (at, rt) = (
        t["access_token"].as_str().unwrap(),
        t["refresh_token"].as_str().unwrap(),
    );
    assert!(active(&app, &c, at).await && active(&app, &c, rt).await);
    app.state.db.set_disabled(&user_id, true).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(4);
    while active(&app, &c, at).await {
        assert!(
            std::time::Instant::now() < deadline,
            "a disabled account's access token is still active"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!active(&app, &c, rt).await, "nor its refresh token");
}

const LOA1: &str = "urn:sesame:loa:1";
const LOA2: &str = "urn:sesame:loa:2";

/// `claims={"id_token":{"acr":{"essential":true,"values":[…]}}}` steps up like `acr_values`.
async fn an_essential_acr_claim_steps_up_like_acr_values(backend: Backend) {
    let (app, _, _) = setup(backend).await;
    let b = app.browser();
    let (_, _) = code_for(&app, &b, "c1", &[]).await;
    let essential = |values: &str| {
        format!(r#"{{"id_token":{{"acr":{{"essential":true,"values":[{values}]}}}}}}"#)
    };
    // Alice has only a password: the strong level alone cannot be met.
    let strong = essential(&format!("\"{LOA2}\""));
    let res = b
        .get(&auth_request(&app.issuer, "c1", &[("claims", &strong)]).url)
        .await;
    assert_eq!(
        query(&location(&res)).get("error").map(String::as_str),
        Some("access_denied"),
        "an essential acr of the two-factor level was ignored"
    );
    // Either level, or a voluntary claim: the password session is enough.
    let either = essential(&format!("\"{LOA1}\",\"{LOA2}\""));
    let voluntary = format!(r#"{{"id_token":{{"acr":{{"values":["{LOA2}"]}}}}}}"#);
    for claims in [either, voluntary] {
        let res = b
            .get(&auth_request(&app.issuer, "c1", &[("claims", &claims)]).url)
            .await;
        assert!(query(&location(&res)).contains_key("code"), "{claims}");
    }
}

both_backends!(
    a_refresh_loop_racing_revoke_leaves_no_live_token,
    a_refresh_loop_racing_a_password_reset_leaves_no_live_token,
    a_refresh_loop_racing_reuse_detection_leaves_no_live_token,
    a_leaked_code_presented_wrongly_is_still_redeemed_by_its_portal,
    a_disabled_accounts_tokens_are_inactive_at_introspection,
    an_essential_acr_claim_steps_up_like_acr_values,
);
