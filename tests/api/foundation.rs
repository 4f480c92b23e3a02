//! Discovery, JWKS, keys that survive restarts and rotations, replicas that agree, health.

use crate::both_backends;
use crate::helpers::{Backend, TestApp};
use serde_json::Value;

async fn jwks(app: &TestApp) -> Value {
    let res = app.http.get(app.url("/jwks")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    res.json().await.unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    let mut k: Vec<String> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect();
    k.sort();
    k
}

async fn discovery_describes_what_is_implemented(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app
        .http
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let d: Value = res.json().await.unwrap();
    assert_eq!(d["issuer"], app.issuer);
    for (k, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("userinfo_endpoint", "/userinfo"),
        ("jwks_uri", "/jwks"),
        ("end_session_endpoint", "/logout"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
    ] {
        assert_eq!(d[k], app.url(path), "{k}");
    }
    assert_eq!(d["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        d["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert_eq!(d["request_parameter_supported"], false);
    assert!(
        d["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&"RS256".into())
    );
    assert!(
        d["subject_types_supported"]
            .as_array()
            .unwrap()
            .contains(&"public".into())
    );
    let grants = d["grant_types_supported"].as_array().unwrap();
    assert!(!grants.contains(&"password".into()) && !grants.contains(&"implicit".into()));
    // The crate a portal uses accepts it.
    app.portal("nobody", None, "https://portal.example.fr/cb")
        .await;
}

async fn jwks_publishes_public_keys_only(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let jwks = jwks(&app).await;
    let keys = jwks["keys"].as_array().unwrap();
    let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    for alg in ["RS256", "ES256", "EdDSA"] {
        assert!(algs.contains(&alg), "{alg} published");
    }
    for k in keys {
        assert_eq!(k["use"], "sig");
        assert!(!k["kid"].as_str().unwrap().is_empty());
        assert!(k["kty"].is_string());
        for private in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            assert!(k.get(private).is_none(), "no {private}");
        }
        if k["kty"] == "RSA" {
            let n = base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                k["n"].as_str().unwrap(),
            )
            .unwrap();
            assert!(n.len() * 8 >= 2048);
        }
    }
    let mut unique = kids(&jwks);
    unique.dedup();
    assert_eq!(unique.len(), keys.len(), "kids are distinct");
}

async fn keys_survive_a_restart_and_rotation_keeps_the_old_ones(backend: Backend) {
    let first = TestApp::spawn(backend.clone()).await;
    let before = kids(&jwks(&first).await);
    let dir = first.dir.clone();
    drop(first);

    let again = TestApp::spawn_in(backend.clone(), dir.clone(), |_| {}).await;
    assert_eq!(
        kids(&jwks(&again).await),
        before,
        "same keys after a restart"
    );

    again.state.keys.rotate().await.unwrap();
    let after = kids(&jwks(&again).await);
    assert_eq!(after.len(), before.len() * 2, "old and new keys published");
    assert!(before.iter().all(|k| after.contains(k)));
    let active = again.state.keys.signer(sesame::domain::IdTokenAlg::RS256);
    assert!(
        !before.contains(&active.kid().to_owned()),
        "a new key signs"
    );
}

async fn replicas_on_one_database_publish_the_same_jwks(backend: Backend) {
    let a = TestApp::spawn(backend.clone()).await;
    let kek = std::fs::read_to_string(a.dir.path().join("keys/master.key")).unwrap();
    let with_kek = |s: &mut sesame::config::Settings| s.keys.encryption_key = Some(kek);
    // A second replica: the same database and encryption key; on PostgreSQL, its own folder.
    let b = match backend {
        Backend::Embedded => TestApp::spawn_in(backend, a.dir.clone(), with_kek).await,
        Backend::External { .. } => TestApp::spawn_with(backend, with_kek).await,
    };
    assert_eq!(kids(&jwks(&a).await), kids(&jwks(&b).await));
    b.state.keys.rotate().await.unwrap();
    a.state.keys.reload().await.unwrap();
    assert_eq!(
        kids(&jwks(&a).await),
        kids(&jwks(&b).await),
        "a rotation reaches the other replica"
    );
}

async fn a_replica_with_another_encryption_key_refuses_to_start(backend: Backend) {
    if matches!(backend, Backend::Embedded) {
        return;
    }
    let _a = TestApp::spawn(backend.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let mut s = backend.settings(dir.path());
    s.keys.encryption_key = Some(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        [9u8; 32],
    ));
    s.listen = "127.0.0.1:0".parse().unwrap();
    let err = sesame::server::Server::build(s)
        .await
        .err()
        .expect("must fail");
    assert!(
        err.to_string().contains("cannot decrypt signing key"),
        "{err}"
    );
}

async fn health_and_readiness(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let res = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    app.state.db.close().await;
    let res = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["database"], "unavailable");
    assert_eq!(body["ephemeral_store"], "ok");
}

async fn responses_carry_security_headers_and_a_request_id(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    for path in ["/", "/jwks", "/nope"] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        let h = res.headers();
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert!(
            h["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("frame-ancestors 'none'")
        );
        assert!(h.contains_key("x-request-id"));
    }
    let res = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("existe pas"));
}

both_backends!(
    discovery_describes_what_is_implemented,
    jwks_publishes_public_keys_only,
    keys_survive_a_restart_and_rotation_keeps_the_old_ones,
    replicas_on_one_database_publish_the_same_jwks,
    a_replica_with_another_encryption_key_refuses_to_start,
    health_and_readiness,
    responses_carry_security_headers_and_a_request_id,
);

#[tokio::test]
async fn file_keys_are_loaded_rotated_and_kept() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let files =
        |s: &mut sesame::config::Settings| s.keys.storage = sesame::config::KeyStorage::Files;
    let a = TestApp::spawn_in(Backend::Embedded, dir.clone(), files).await;
    let before = kids(&jwks(&a).await);
    let pems = std::fs::read_dir(dir.path().join("keys"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "pem")
        })
        .count();
    assert_eq!(pems, 3, "one PEM per algorithm");
    a.state.keys.rotate().await.unwrap();
    drop(a);
    let b = TestApp::spawn_in(Backend::Embedded, dir.clone(), files).await;
    let after = kids(&jwks(&b).await);
    assert_eq!(after.len(), 6);
    assert!(before.iter().all(|k| after.contains(k)));
}
