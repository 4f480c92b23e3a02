//! What a new password or a new sign-in must not leave behind: a forgotten-password link
//! still pending, or the session the browser had before.

use crate::both_backends;
use crate::helpers::{
    Backend, Browser, ClientSpec, PASSWORD, TestApp, auth_request, cli, forms, location,
};
use crate::smtp::Sink;

/// Asks for a reset link for `username` and returns it (the n-th mail to them).
async fn reset_link(app: &TestApp, sink: &Sink, username: &str, n: usize) -> String {
    let b = app.browser();
    let html = b.get("/password/forgot").await.text().await.unwrap();
    let id = forms(&html)
        .iter()
        .flat_map(|f| f.hidden.clone())
        .find(|(k, _)| k == "captcha_id")
        .expect("a captcha")
        .1;
    let answer = app
        .state
        .eph
        .get(&format!("captcha:{id}"))
        .await
        .unwrap()
        .expect("answer stored");
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

both_backends!(
    a_pending_reset_link_dies_with_a_later_password_change,
    a_new_sign_in_replaces_the_browsers_session,
);
