//! `sesame demo` run as a person would: its own test PKI, and the demo card signing in to
//! the demo portal through the certificate-login listener.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::{location, unescape};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_card_signs_in_through_the_mtls_listener() {
    let dir = tempfile::tempdir().unwrap();
    let (idp, portal, mtls) = (free_port(), free_port(), free_port());
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sesame"))
        .args(["demo", "--portal-listen", &format!("127.0.0.1:{portal}")])
        .args(["--mtls-listen", &format!("127.0.0.1:{mtls}")])
        .current_dir(dir.path())
        .env_remove("SESAME_CONFIG")
        .env("SESAME_ISSUER", format!("http://127.0.0.1:{idp}"))
        .env("SESAME_LISTEN", format!("127.0.0.1:{idp}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // The banner says where the files are; it is printed once everything is set up.
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut banner = String::new();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            banner.push_str(&line);
            banner.push('\n');
            if line.contains("Ctrl-C") {
                break;
            }
        }
    })
    .await
    .expect("the demo starts");
    let pki = dir.path().join("data/demo-pki");
    assert!(banner.contains("data/demo-pki"), "{banner}");
    assert!(
        banner.contains("card.p12") && banner.contains("ca.pem"),
        "{banner}"
    );
    assert!(pki.join("card.p12").exists());

    // A browser that trusts the demo CA and holds the card.
    let read = |f: &str| std::fs::read(pki.join(f)).unwrap();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
        .add_root_certificate(reqwest::Certificate::from_pem(&read("ca.pem")).unwrap())
        .identity(
            reqwest::Identity::from_pem(&[read("card.pem"), read("card.key")].concat()).unwrap(),
        )
        .build()
        .unwrap();
    let get = |url: String| {
        let browser = browser.clone();
        async move { browser.get(&url).send().await.unwrap() }
    };
    let abs = |l: String| {
        if l.starts_with('/') {
            format!("http://127.0.0.1:{idp}{l}")
        } else {
            l
        }
    };

    let res = get(format!("http://127.0.0.1:{portal}/login")).await;
    let res = get(location(&res)).await;
    let interaction = abs(location(&res));
    let html = unescape(&get(interaction.clone()).await.text().await.unwrap());
    let uid = interaction.rsplit('/').next().unwrap();
    let card_url = format!("https://127.0.0.1:{mtls}/certificate/{uid}");
    assert!(html.contains("Authentification par certificat client"));
    assert!(html.contains(&card_url), "the link to the mTLS listener");

    // The listener may still be starting: it comes up with the server, right after the banner.
    let mut res = None;
    for _ in 0..50 {
        match browser.get(&card_url).send().await {
            Ok(r) => {
                res = Some(r);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let res = res.expect("the mTLS listener answers");
    assert_eq!(res.status(), 303, "the card is accepted");
    let res = get(location(&res)).await;
    let callback = location(&res);
    assert!(callback.starts_with(&format!("http://127.0.0.1:{portal}/callback?")));
    let page = get(callback).await.text().await.unwrap();
    assert!(
        page.contains("Bonjour <strong>Camille Martin</strong>"),
        "{page}"
    );
    assert!(
        page.contains("&quot;sc&quot;"),
        "amr says smart card: {page}"
    );
    child.kill().await.unwrap();
}
