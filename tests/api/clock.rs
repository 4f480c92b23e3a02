//! Lifetimes on the flows' clock, moved forward instead of slept through: the SSO session's
//! idle and absolute ends (ANS: 30 min, 4 h) and the forgotten-password link's hour.

use std::time::Duration;

use crate::both_backends;
use crate::helpers::{Backend, ClientSpec, TestApp, auth_request, location, query};

const MINUTE: u64 = 60;

async fn signed_in_status(b: &crate::helpers::Browser) -> u16 {
    b.get("/account").await.status().as_u16()
}

async fn the_session_ends_after_30_idle_minutes(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    app.create_user("alice").await;
    let b = app.signed_in("alice", "portal").await;
    app.state.clock.advance(Duration::from_secs(29 * MINUTE));
    assert_eq!(signed_in_status(&b).await, 200, "29 idle minutes");
    app.state.clock.advance(Duration::from_secs(31 * MINUTE));
    assert_eq!(signed_in_status(&b).await, 401, "31 idle minutes");
    let res = b
        .get(&auth_request(&app.issuer, "portal", &[("prompt", "none")]).url)
        .await;
    assert_eq!(query(&location(&res))["error"], "login_required");
}

async fn the_session_ends_after_4_hours_however_busy(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    app.create_user("alice").await;
    let b = app.signed_in("alice", "portal").await;
    // Used every 25 minutes: never idle, and still over at 4 hours.
    for step in 1..=9 {
        app.state.clock.advance(Duration::from_secs(25 * MINUTE));
        let expected = if step * 25 < 240 { 200 } else { 401 };
        assert_eq!(
            signed_in_status(&b).await,
            expected,
            "after {} minutes",
            step * 25
        );
    }
}

async fn a_reset_link_lasts_an_hour(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, |_| {}).await;
    app.create_user("alice").await;
    let b = app.browser();
    let html = b.get("/password/forgot").await.text().await.unwrap();
    let (_, answer) = app.captcha(&html).await;
    b.submit(&html, 0, &[("username", "alice"), ("captcha", &answer)])
        .await;
    let mail = sink.wait_for("alice@example.fr", 1).await;
    let link = mail
        .lines()
        .find(|l| l.contains("/password/reset/"))
        .unwrap()
        .trim()
        .to_owned();
    app.state.clock.advance(Duration::from_secs(59 * MINUTE));
    assert_eq!(b.get(&link).await.status(), 200, "59 minutes");
    app.state.clock.advance(Duration::from_secs(2 * MINUTE));
    assert_eq!(b.get(&link).await.status(), 400, "61 minutes");
}

both_backends!(
    the_session_ends_after_30_idle_minutes,
    the_session_ends_after_4_hours_however_busy,
    a_reset_link_lasts_an_hour,
);
