//! One contract, two backends: the in-memory store and Redis behave alike.

use std::time::Duration;

use sesame::store::Ephemeral;

use crate::helpers::{Backend, REDIS};

async fn store(backend: &Backend) -> Ephemeral {
    match backend {
        Backend::Embedded => Ephemeral::memory(),
        Backend::External { redis_prefix, .. } => Ephemeral::redis(&[REDIS.into()], redis_prefix)
            .await
            .unwrap(),
    }
}

const LONG: Duration = Duration::from_secs(60);

async fn put_get_and_expiry(backend: Backend) {
    let s = store(&backend).await;
    assert_eq!(s.get("k").await.unwrap(), None);
    s.put("k", "v1", LONG).await.unwrap();
    assert_eq!(s.get("k").await.unwrap().as_deref(), Some("v1"));
    s.put("k", "v2", LONG).await.unwrap();
    assert_eq!(
        s.get("k").await.unwrap().as_deref(),
        Some("v2"),
        "put replaces"
    );
    s.put("short", "x", Duration::from_millis(150))
        .await
        .unwrap();
    assert!(s.get("short").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.get("short").await.unwrap(), None, "expired");
    s.delete("k").await.unwrap();
    assert_eq!(s.get("k").await.unwrap(), None);
}

async fn take_is_single_use_even_concurrently(backend: Backend) {
    let s = store(&backend).await;
    s.put("code", "grant", LONG).await.unwrap();
    let takers: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move { s.take("code").await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in takers {
        if t.await.unwrap().is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one taker gets the value");
    assert_eq!(s.get("code").await.unwrap(), None);
}

async fn put_if_absent_keeps_the_first(backend: Backend) {
    let s = store(&backend).await;
    assert!(s.put_if_absent("once", "a", LONG).await.unwrap());
    assert!(!s.put_if_absent("once", "b", LONG).await.unwrap());
    assert_eq!(s.get("once").await.unwrap().as_deref(), Some("a"));
    s.put_if_absent("brief", "a", Duration::from_millis(100))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        s.put_if_absent("brief", "b", LONG).await.unwrap(),
        "free again after expiry"
    );
}

async fn put_if_present_never_revives(backend: Backend) {
    let s = store(&backend).await;
    assert!(
        !s.put_if_present("gone", "a", LONG).await.unwrap(),
        "absent: nothing stored"
    );
    assert_eq!(s.get("gone").await.unwrap(), None);
    s.put("here", "a", LONG).await.unwrap();
    assert!(s.put_if_present("here", "b", LONG).await.unwrap());
    assert_eq!(s.get("here").await.unwrap().as_deref(), Some("b"));
    s.delete("here").await.unwrap();
    assert!(!s.put_if_present("here", "c", LONG).await.unwrap());
    assert_eq!(
        s.get("here").await.unwrap(),
        None,
        "a deleted record stays deleted"
    );
}

async fn counters_count_within_their_window(backend: Backend) {
    let s = store(&backend).await;
    for expected in 1..=5 {
        assert_eq!(
            s.incr("fails", Duration::from_millis(300)).await.unwrap(),
            expected
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        s.incr("fails", Duration::from_millis(300)).await.unwrap(),
        1,
        "a new window"
    );
}

async fn delete_by_owner(backend: Backend) {
    let s = store(&backend).await;
    for k in ["s1", "s2", "s3"] {
        s.put(k, "v", LONG).await.unwrap();
        s.own("user:42", k, LONG).await.unwrap();
    }
    s.put("other", "v", LONG).await.unwrap();
    s.own("user:7", "other", LONG).await.unwrap();
    s.delete("s3").await.unwrap();
    let mut members = s.members("user:42").await.unwrap();
    members.sort();
    assert_eq!(members, ["s1", "s2", "s3"], "filed keys, as given");
    assert_eq!(
        s.delete_owner("user:42").await.unwrap(),
        2,
        "the two still there"
    );
    for k in ["s1", "s2"] {
        assert_eq!(s.get(k).await.unwrap(), None);
    }
    assert!(
        s.get("other").await.unwrap().is_some(),
        "other owners untouched"
    );
    assert_eq!(s.delete_owner("user:42").await.unwrap(), 0);
    assert!(s.members("user:42").await.unwrap().is_empty());
}

async fn json_records_round_trip(backend: Backend) {
    let s = store(&backend).await;
    s.put_json("rec", &serde_json::json!({"a": [1, 2]}), LONG)
        .await
        .unwrap();
    let v: serde_json::Value = s.take_json("rec").await.unwrap().unwrap();
    assert_eq!(v["a"][1], 2);
    s.put("bad", "not json", LONG).await.unwrap();
    assert!(
        s.get_json::<serde_json::Value>("bad").await.is_err(),
        "corrupt data is an error, not a panic"
    );
    s.ping().await.unwrap();
}

async fn swap_hands_each_previous_value_to_one_caller(backend: Backend) {
    let s = store(&backend).await;
    assert_eq!(s.swap("slot", "a", LONG).await.unwrap(), None);
    assert_eq!(
        s.swap("slot", "b", LONG).await.unwrap().as_deref(),
        Some("a")
    );
    // Racing swaps: every value but the last is handed back exactly once.
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.swap("slot", &i.to_string(), LONG).await.unwrap() })
        })
        .collect();
    let mut seen = vec![];
    for t in tasks {
        seen.extend(t.await.unwrap());
    }
    seen.extend(s.get("slot").await.unwrap());
    seen.sort();
    let mut expected: Vec<String> = (0..20).map(|i: i32| i.to_string()).collect();
    expected.push("b".into());
    expected.sort();
    assert_eq!(seen, expected);
    let f = s.footprint().await.unwrap();
    assert_eq!(f.keys, 1);
    assert!(f.bytes > "slot".len(), "{f:?}");
}

crate::both_backends!(
    swap_hands_each_previous_value_to_one_caller,
    put_get_and_expiry,
    take_is_single_use_even_concurrently,
    put_if_absent_keeps_the_first,
    put_if_present_never_revives,
    counters_count_within_their_window,
    delete_by_owner,
    json_records_round_trip,
);

#[tokio::test]
async fn prefixes_keep_deployments_apart() {
    let Some(Backend::External { redis_prefix, .. }) = Backend::external().await else {
        return;
    };
    let a = Ephemeral::redis(&[REDIS.into()], &redis_prefix)
        .await
        .unwrap();
    let b = Ephemeral::redis(&[REDIS.into()], &format!("{redis_prefix}other:"))
        .await
        .unwrap();
    a.put("k", "a", LONG).await.unwrap();
    assert_eq!(b.get("k").await.unwrap(), None);
}

#[tokio::test]
async fn an_unreachable_redis_is_a_clear_error() {
    let err = Ephemeral::redis(&["redis://127.0.0.1:1".into()], "x:")
        .await
        .err()
        .expect("must fail");
    assert!(err.to_string().contains("unavailable"), "{err}");
}
