//! Per-address throttling under attack: a client that writes its own `X-Forwarded-For`
//! hops, and guesses sent in parallel so that none has failed yet when the others arrive.

use crate::both_backends;
use crate::helpers::{Backend, Browser, ClientSpec, TestApp, auth_request, forms, location};

/// The sign-in page of a fresh request: the browser and the page's HTML.
async fn sign_in_page(app: &TestApp) -> (Browser, String) {
    let b = app.browser();
    let res = b.get(&auth_request(&app.issuer, "portal", &[]).url).await;
    let html = b.get(&location(&res)).await.text().await.unwrap();
    (b, html)
}

/// A wrong password for `username` on that page, as the proxy forwards it with `xff`.
async fn guess(b: &Browser, html: &str, username: &str, xff: &str) -> u16 {
    let form = forms(html).into_iter().next().expect("the sign-in form");
    let mut fields = form.hidden.clone();
    fields.push(("username".into(), username.into()));
    fields.push(("password".into(), "Wrong#Guess9".into()));
    b.http
        .post(b.abs(&form.action))
        .header("x-forwarded-for", xff)
        .form(&fields)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The limit of 50 failures per address holds whatever first hop the client writes: the
/// proxy appends the address it saw, and that right-most untrusted hop is the client.
async fn a_forged_first_forwarded_hop_does_not_reset_the_count(backend: Backend) {
    let app = TestApp::spawn_with(backend, |s| {
        s.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    app.create_client(ClientSpec::portal("portal")).await;
    let (b, html) = sign_in_page(&app).await;
    // Unknown identifiers, one each: the per-account gate never stops these.
    for i in 0..50 {
        let xff = format!("198.51.100.{i}, 203.0.113.7");
        assert_eq!(
            guess(&b, &html, &format!("ghost{i}"), &xff).await,
            401,
            "#{i}"
        );
    }
    let forged = guess(&b, &html, "ghost-x", "192.0.2.99, 203.0.113.7").await;
    assert_eq!(forged, 429, "a new first hop is the same client");
    let neighbour = guess(&b, &html, "ghost-y", "203.0.113.8").await;
    assert_eq!(
        neighbour, 401,
        "another client behind the same proxy is not held"
    );
}

/// 200 guesses at once from one address: the count is taken before each password is
/// checked, so no more than the limit are evaluated.
async fn parallel_guesses_are_held_at_the_limit(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    let (b, html) = sign_in_page(&app).await;
    let form = forms(&html).into_iter().next().expect("the sign-in form");
    let url = b.abs(&form.action);
    let statuses = at_once(
        200,
        move |http, i| {
            let mut fields = form.hidden.clone();
            fields.push(("username".into(), format!("ghost{i}")));
            fields.push(("password".into(), "Wrong#Guess9".into()));
            http.post(&url).form(&fields)
        },
        b.http.clone(),
    )
    .await;
    let evaluated = statuses.iter().filter(|s| **s == 401).count();
    let held = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(evaluated + held, 200, "{statuses:?}");
    assert!(
        evaluated <= 50,
        "{evaluated} guesses evaluated against a limit of 50"
    );
}

/// The token endpoint: 200 wrong client secrets at once, at most 60 checked.
async fn parallel_client_secret_guesses_are_held(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.create_client(ClientSpec::portal("portal")).await;
    let url = app.url("/token");
    let statuses = at_once(
        200,
        move |http, i| {
            http.post(&url)
                .basic_auth("portal", Some(format!("wrong-{i}")))
                .form(&[("grant_type", "client_credentials")])
        },
        app.http.clone(),
    )
    .await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(
        checked + statuses.iter().filter(|s| **s == 429).count(),
        200,
        "{statuses:?}"
    );
    assert!(
        checked <= 60,
        "{checked} secrets checked against a limit of 60"
    );
}

/// Sends `n` requests at once from a runtime of their own (as an attacker's process would:
/// the server's workers are not theirs) and returns the statuses.
async fn at_once<F>(n: usize, request: F, http: reqwest::Client) -> Vec<u16>
where
    F: Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let statuses = rt.block_on(async {
            let start = std::sync::Arc::new(tokio::sync::Barrier::new(n));
            let tries: Vec<_> = (0..n)
                .map(|i| {
                    let (req, start) = (request(&http, i), start.clone());
                    tokio::spawn(async move {
                        start.wait().await;
                        req.send().await.unwrap().status().as_u16()
                    })
                })
                .collect();
            let mut statuses = Vec::new();
            for t in tries {
                statuses.push(t.await.unwrap());
            }
            statuses
        });
        let _ = tx.send(statuses);
    });
    rx.await.unwrap()
}

both_backends!(
    a_forged_first_forwarded_hop_does_not_reset_the_count,
    parallel_guesses_are_held_at_the_limit,
    parallel_client_secret_guesses_are_held,
);
