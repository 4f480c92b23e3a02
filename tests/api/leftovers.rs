//! What a new password or a new sign-in must not leave behind: a forgotten-password link
//! still pending, or the session the browser had before.

use crate::both_backends;
use crate::helpers::{
    Backend, Browser, ClientSpec, PASSWORD, TestApp, auth_request, cli, forms, location, totp_now,
};
use crate::smtp::Sink;

/// Asks for a reset link for `username` and returns it (the n-th mail to them).
async fn reset_link(app: &TestApp, sink: &Sink, username: &str, n: usize) -> String {
    let b = app.browser();
    let html = b.get("/password/forgot").await.text().await.unwrap();
    let (_, answer) = app.captcha(&html).await;
    let res = b
        .submit(&html, 0, &[("username", username), ("captcha", &answer)])
        .await;
    assert_eq!(res.status(), 200);
    let mail = sink.wait_for(&format!("{username}@example.fr"), n).await;
    mail.lines()
        .find(|l| l.contains("/password/reset/"))
        .expect("a link")
        .trim()
        .to_owned()
}

/// Changes alice's password in « Mon compte ».
async fn change_in_mon_compte(b: &Browser, new: &str) {
    let html = b.get("/account").await.text().await.unwrap();
    let i = forms(&html)
        .iter()
        .position(|f| f.action == "/account/password")
        .unwrap();
    let fields = [
        ("username", "alice"),
        ("old_password", PASSWORD),
        ("new_password", new),
        ("new_password_confirm", new),
    ];
    assert_eq!(b.submit(&html, i, &fields).await.status(), 200);
}

/// A link asked for (by the owner, or by someone with the mailbox) and then left unused
/// would undo any later change: a password set by the owner or by an operator voids it.
async fn a_pending_reset_link_dies_with_a_later_password_change(backend: Backend) {
    let (app, sink) = TestApp::with_mail(backend, |_| {}).await;
    app.create_client(ClientSpec::portal("portal")).await;
    app.create_user("alice").await;
    let link = reset_link(&app, &sink, "alice", 1).await;
    assert_eq!(app.browser().get(&link).await.status(), 200, "live");
    let b = app.signed_in("alice", "portal").await;
    change_in_mon_compte(&b, "Autre#Secret99").await;
    assert_eq!(app.browser().get(&link).await.status(), 400, "after F5");

    // The operator's reset runs in another process; the link's time tells.
    let link = reset_link(&app, &sink, "alice", 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    cli(&app, &["user", "reset-password", "alice"]);
    assert_eq!(app.browser().get(&link).await.status(), 400, "after F2");
}

/// Signing in again in a browser that has a session replaces it: for the same account
/// (`prompt=login`, a step-up) one session remains, keeping its `sid`; for another account
/// (the next person at a shared workstation) the previous one ends.
async fn a_new_sign_in_replaces_the_browsers_session(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = app
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    let alice = app.create_user("alice").await;
    let bob = app.create_user("bob").await;
    let sessions = |id: String| {
        let eph = app.state.eph.clone();
        async move {
            sesame::services::session::sessions_of(&eph, &id)
                .await
                .unwrap()
        }
    };
    let b = app.signed_in("alice", "portal").await;
    let first = sessions(alice.id.clone()).await;
    assert_eq!(first.len(), 1);

    let again = auth_request(&app.issuer, "portal", &[("prompt", "login")]);
    let res = b.sign_in(&again.url, "alice", PASSWORD).await;
    let code = crate::helpers::query(&location(&res))["code"].clone();
    let claims = app
        .id_claims("portal", &secret, &code, &again.verifier)
        .await;
    let now = sessions(alice.id.clone()).await;
    assert_eq!(now.len(), 1, "one session for alice, not two");
    assert_eq!(now[0].sid, first[0].sid, "the same sid");
    assert_eq!(claims["sid"], first[0].sid.as_str());

    let next = auth_request(&app.issuer, "portal", &[("prompt", "login")]);
    let res = b.sign_in(&next.url, "bob", PASSWORD).await;
    assert_eq!(res.status(), 303);
    assert!(sessions(alice.id.clone()).await.is_empty(), "alice's ended");
    assert_eq!(sessions(bob.id.clone()).await.len(), 1);
}

/// The second review's race: a sign-in checks the old password, a reset lands, the sign-in
/// finishes. Here the window is held open by the second factor: the password is checked,
/// then the operator's reset, then the code. The session it opens, and every token from it,
/// belong to the old sign-in epoch and are void.
async fn a_sign_in_overtaken_by_a_reset_gives_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = app
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    let alice = app.create_user("alice").await;
    let totp = app.with_totp(&alice).await;
    let b = app.browser();
    let req = auth_request(
        &app.issuer,
        "portal",
        &[("scope", "openid offline_access"), ("prompt", "consent")],
    );
    let res = b.sign_in(&req.url, "alice", PASSWORD).await;
    let page = b.get(&location(&res)).await.text().await.unwrap();
    assert!(page.contains("name=\"code\""), "the second factor is asked");

    // The reset lands between the password and the code.
    app.state.end_all_sessions(&alice.id).await.unwrap();

    let otp = totp_now(&totp);
    let mut res = b.submit(&page, 0, &[("code", &otp)]).await;
    // Consent (offline_access) if asked, then the portal.
    if location(&res).starts_with("/interaction/") {
        let consent = b.get(&location(&res)).await.text().await.unwrap();
        res = b.submit(&consent, 0, &[]).await;
    }
    // The consent page refuses the void session outright; had it gone on, its code would be
    // refused at the token endpoint.
    match crate::helpers::query(&location(&res)).get("code") {
        Some(code) => {
            let tokens = app.redeem("portal", &secret, code, &req.verifier).await;
            assert_eq!(tokens["error"], "invalid_grant", "{tokens}");
        }
        None => assert_eq!(res.status(), 400, "the consent of a void session"),
    }
    let again = auth_request(&app.issuer, "portal", &[("prompt", "none")]);
    let res = b.get(&again.url).await;
    assert_eq!(
        crate::helpers::query(&location(&res))["error"],
        "login_required",
        "the session opened after the reset is void"
    );
}

/// A tab opened before someone else signed in, in the same browser: the sign-in through it
/// still replaces the session the browser has now.
async fn a_tab_opened_earlier_replaces_the_session_too(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    let alice = app.create_user("alice").await;
    app.create_user("bob").await;
    let b = app.browser();
    // Tab 1 opens first, and waits.
    let tab1 = auth_request(&app.issuer, "portal", &[("prompt", "login")]);
    let res = b.get(&tab1.url).await;
    let tab1_page = b.get(&location(&res)).await.text().await.unwrap();
    // Alice signs in through tab 2.
    let tab2 = auth_request(&app.issuer, "portal", &[]);
    b.sign_in(&tab2.url, "alice", PASSWORD).await;
    assert_eq!(
        sesame::services::session::sessions_of(&app.state.eph, &alice.id)
            .await
            .unwrap()
            .len(),
        1
    );
    // Bob, through tab 1.
    let res = b
        .submit(
            &tab1_page,
            0,
            &[("username", "bob"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status(), 303);
    assert!(
        sesame::services::session::sessions_of(&app.state.eph, &alice.id)
            .await
            .unwrap()
            .is_empty(),
        "alice's session ended"
    );
}

/// Posts to a reset link that does not exist, and throttled forgotten-password posts,
/// write nothing to the ephemeral store.
async fn refused_posts_write_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let b = app.browser();
    let before = app.state.eph.footprint().await.unwrap();
    for i in 0..20 {
        let res = b
            .post(
                &format!("/password/reset/no-such-link-{i}"),
                &[
                    ("csrf_token".into(), "x".into()),
                    ("username".into(), "a".into()),
                ],
            )
            .await;
        assert_eq!(res.status(), 400);
    }
    let after = app.state.eph.footprint().await.unwrap();
    assert_eq!(after.keys, before.keys, "no form token per post");
    // The forgotten-password form: past its limit, a bare 429.
    for _ in 0..12 {
        b.post(
            "/password/forgot",
            &[
                ("csrf_token".into(), "x".into()),
                ("username".into(), "a".into()),
            ],
        )
        .await;
    }
    let before = app.state.eph.footprint().await.unwrap();
    for _ in 0..20 {
        let res = b
            .post(
                "/password/forgot",
                &[
                    ("csrf_token".into(), "x".into()),
                    ("username".into(), "a".into()),
                ],
            )
            .await;
        assert_eq!(res.status(), 429);
    }
    let after = app.state.eph.footprint().await.unwrap();
    assert_eq!(
        after.keys, before.keys,
        "no captcha, no form per refused post"
    );
}

/// The third review: a step-up parked from a password session, the reset, then the code
/// alone. The step-up keeps the epoch of the session it came from, so it opens nothing.
async fn a_step_up_overtaken_by_a_reset_gives_nothing(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let secret = app
        .create_client(ClientSpec::portal("portal"))
        .await
        .unwrap();
    let carol = app.create_user("carol").await;
    let b = app.signed_in("carol", "portal").await;
    let totp = app.with_totp(&carol).await;
    let strong = auth_request(&app.issuer, "portal", &[("acr_values", "urn:sesame:loa:2")]);
    let res = b.get(&strong.url).await;
    let page = b.get(&location(&res)).await.text().await.unwrap();
    assert!(
        page.contains("name=\"code\""),
        "the step-up asks the code only"
    );
    app.state.end_all_sessions(&carol.id).await.unwrap();
    let res = b.submit(&page, 0, &[("code", &totp_now(&totp))]).await;
    // The code comes (the step-up finished), and is worth nothing.
    let code = crate::helpers::query(&location(&res))["code"].clone();
    let tokens = app.redeem("portal", &secret, &code, &strong.verifier).await;
    assert_eq!(tokens["error"], "invalid_grant", "{tokens}");
    let again = auth_request(&app.issuer, "portal", &[("prompt", "none")]);
    let res = b.get(&again.url).await;
    assert_eq!(
        crate::helpers::query(&location(&res))["error"],
        "login_required"
    );
}

/// An operator's reset or disabling that cannot reach the ephemeral store (another process,
/// the in-memory store) still ends « Mon compte » for the old session: only the database
/// moves here, as the CLI's would.
async fn mon_compte_ends_with_a_reset_the_store_never_saw(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    let erin = app.create_user("erin").await;
    let b = app.signed_in("erin", "portal").await;
    assert_eq!(b.get("/account").await.status(), 200);
    app.state
        .db
        .revoke_user_refresh_tokens(&erin.id)
        .await
        .unwrap();
    assert_eq!(b.get("/account").await.status(), 401);
    let b = app.signed_in("erin", "portal").await;
    assert_eq!(b.get("/account").await.status(), 200, "a new sign-in works");
    app.state.db.set_disabled(&erin.id, true).await.unwrap();
    assert_eq!(b.get("/account").await.status(), 401, "disabled");
}

/// Failed sign-ins are counted under the identifier as typed: a 60 KB one costs no more
/// store than a short one.
async fn a_huge_identifier_costs_a_small_key(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    let b = app.browser();
    let res = b.get(&auth_request(&app.issuer, "portal", &[]).url).await;
    let html = b.get(&location(&res)).await.text().await.unwrap();
    let before = app.state.eph.footprint().await.unwrap();
    let huge = format!("x{}", "a".repeat(60_000));
    for _ in 0..5 {
        let res = b
            .submit(
                &html,
                0,
                &[("username", &huge), ("password", "Wrong#Guess9")],
            )
            .await;
        assert_eq!(res.status(), 401);
    }
    let after = app.state.eph.footprint().await.unwrap();
    assert!(
        after.bytes < before.bytes + 4_000,
        "{} bytes for five failures",
        after.bytes - before.bytes
    );
}

both_backends!(
    a_step_up_overtaken_by_a_reset_gives_nothing,
    mon_compte_ends_with_a_reset_the_store_never_saw,
    a_huge_identifier_costs_a_small_key,
    a_pending_reset_link_dies_with_a_later_password_change,
    a_new_sign_in_replaces_the_browsers_session,
    a_sign_in_overtaken_by_a_reset_gives_nothing,
    a_tab_opened_earlier_replaces_the_session_too,
    refused_posts_write_nothing,
);
