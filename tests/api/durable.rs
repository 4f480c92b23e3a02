//! The durable store on both databases: accounts, portals, consents, refresh tokens, audit.

use sesame::domain::{ClientId, Scopes, Username};
use sesame::store::db::refresh_tokens::{NewFamily, NewRefreshToken, Rotation};
use sesame::store::db::users::CreateUserError;

use crate::both_backends;
use crate::helpers::{Backend, ClientSpec, TestApp};

async fn accounts_are_unique_and_read_back(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let u = app.create_user("jdupont").await;
    let by_name = app
        .state
        .db
        .user_by_username(&Username::parse("JDupont").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_name.id, u.id);
    assert_eq!(by_name.email.as_str(), "jdupont@example.fr");
    assert!(!by_name.disabled && !by_name.password_temporary);
    let again = app
        .state
        .db
        .create_user(sesame::store::db::users::NewUser {
            username: Username::parse("jdupont").unwrap(),
            email: sesame::domain::Email::parse("x@example.fr").unwrap(),
            given_name: None,
            family_name: None,
            password_hash: "h".into(),
            temporary: false,
        })
        .await;
    assert!(matches!(again, Err(CreateUserError::Taken(_))));
}

async fn clients_round_trip_and_deletion_cascades(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("alice").await;
    let mut spec = ClientSpec::portal("portail:santé");
    spec.allowed_scopes = vec!["api:read".into()];
    let secret = app.create_client(spec).await.unwrap();
    let c = app
        .state
        .db
        .client(&ClientId::parse("portail:santé").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        c.secret_hash.as_deref(),
        Some(sesame::crypto::token_hash(&secret).as_str()),
        "only the hash is kept"
    );
    assert_eq!(c.allowed_scopes, vec!["api:read".to_string()]);
    let scopes = Scopes::parse("openid email").unwrap();
    app.state
        .db
        .grant_consent(&user.id, "portail:santé", &scopes)
        .await
        .unwrap();
    assert_eq!(
        app.state
            .db
            .consent(&user.id, "portail:santé")
            .await
            .unwrap(),
        Some(scopes)
    );
    assert!(app.state.db.delete_client("portail:santé").await.unwrap());
    assert!(
        app.state
            .db
            .client(&ClientId::parse("portail:santé").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        app.state
            .db
            .consent(&user.id, "portail:santé")
            .await
            .unwrap(),
        None,
        "consents go with the client"
    );
    assert!(!app.state.db.delete_client("portail:santé").await.unwrap());
}

fn family<'a>(user_id: &'a str, session_id: Option<&'a str>) -> NewFamily<'a> {
    NewFamily {
        family_id: "fam",
        user_id,
        client_id: "p1",
        session_id,
        auth_time: 0,
        epoch: 0,
    }
}

fn token(hash: &str) -> NewRefreshToken<'_> {
    NewRefreshToken {
        token_hash: hash,
        grant_json: "{}",
        expires_at: i64::MAX / 2,
    }
}

async fn refresh_tokens_spend_once_and_replay_revokes_the_family(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("bob").await;
    app.create_client(ClientSpec::portal("p1")).await;
    let db = &app.state.db;
    assert!(
        db.start_refresh_family(family(&user.id, Some("sid")), token("rt1"))
            .await
            .unwrap()
    );
    assert!(matches!(
        db.rotate_refresh_token("rt1", token("rt2")).await.unwrap(),
        Rotation::Rotated(_)
    ));
    assert!(matches!(
        db.rotate_refresh_token("rt1", token("rt3")).await.unwrap(),
        Rotation::Replayed(_)
    ));
    let rt2 = db.refresh_token("rt2").await.unwrap().unwrap();
    assert!(rt2.revoked, "the family is revoked after a replay");
    assert!(db.refresh_token("rt3").await.unwrap().is_none());
    assert!(matches!(
        db.rotate_refresh_token("rt2", token("rt4")).await.unwrap(),
        Rotation::Refused
    ));
    assert!(matches!(
        db.rotate_refresh_token("nope", token("rt5")).await.unwrap(),
        Rotation::Refused
    ));
}

async fn concurrent_spends_have_one_winner(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let user = app.create_user("carol").await;
    app.create_client(ClientSpec::portal("p1")).await;
    assert!(
        app.state
            .db
            .start_refresh_family(family(&user.id, None), token("rt"))
            .await
            .unwrap()
    );
    let tasks: Vec<_> = (0..6)
        .map(|i| {
            let db = app.state.db.clone();
            tokio::spawn(async move {
                let next = format!("next{i}");
                matches!(
                    db.rotate_refresh_token("rt", token(&next)).await.unwrap(),
                    Rotation::Rotated(_)
                )
            })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += t.await.unwrap() as usize;
    }
    assert_eq!(winners, 1);
}

async fn audit_rows_are_written(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    app.state
        .db
        .audit(sesame::store::db::audit::AuditEvent {
            ip: Some("127.0.0.1".into()),
            ..sesame::store::db::audit::AuditEvent::new(sesame::domain::audit::Event::KeysRotated)
        })
        .await
        .unwrap();
    let rows = app.state.db.recent_audit(5).await.unwrap();
    assert_eq!(rows[0].event, "keys_rotated");
    assert_eq!(rows[0].detail, "{}");
}

both_backends!(
    accounts_are_unique_and_read_back,
    clients_round_trip_and_deletion_cascades,
    refresh_tokens_spend_once_and_replay_revokes_the_family,
    concurrent_spends_have_one_winner,
    audit_rows_are_written,
);
