//! The `sesame` binary as an operator uses it: clear errors, non-zero exits, nothing half-written.

use std::io::Write;
use std::process::{Command, Output, Stdio};

struct Cli {
    dir: tempfile::TempDir,
}

impl Cli {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_env(args, stdin, &[])
    }

    fn run_env(&self, args: &[&str], stdin: Option<&str>, env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sesame"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("SESAME_CONFIG")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        drop(child.stdin.take());
        child.wait_with_output().unwrap()
    }
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn client_create_prints_the_secret_once_as_json() {
    let cli = Cli::new();
    let o = cli.run(
        &[
            "client",
            "create",
            "portail",
            "--redirect-uri",
            "https://p.fr/cb",
            "--first-party",
            "--json",
        ],
        None,
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["client_id"], "portail");
    assert_eq!(v["client_secret"].as_str().unwrap().len(), 43);
    let list = cli.run(&["client", "list", "--json"], None);
    let (out, _) = text(&list);
    assert!(
        !out.contains(v["client_secret"].as_str().unwrap()),
        "never shown again"
    );
    assert!(out.contains("https://p.fr/cb"));
    let dup = cli.run(
        &[
            "client",
            "create",
            "portail",
            "--redirect-uri",
            "https://p.fr/cb",
        ],
        None,
    );
    assert!(!dup.status.success());
    assert!(text(&dup).1.contains("already exists"));
    assert!(
        cli.run(&["client", "delete", "portail"], None)
            .status
            .success()
    );
    assert!(
        !cli.run(&["client", "delete", "portail"], None)
            .status
            .success()
    );
}

#[test]
fn bad_client_arguments_are_refused_and_write_nothing() {
    let cli = Cli::new();
    for (args, expected) in [
        (
            vec![
                "client",
                "create",
                "c",
                "--redirect-uri",
                "https://x.fr/cb#frag",
            ],
            "fragment",
        ),
        (
            vec![
                "client",
                "create",
                "c",
                "--redirect-uri",
                "http://portal.example/cb",
            ],
            "https",
        ),
        (
            vec![
                "client",
                "create",
                "c",
                "--redirect-uri",
                "https://*.x.fr/cb",
            ],
            "wildcard",
        ),
        (
            vec![
                "client",
                "create",
                "c",
                "--redirect-uri",
                "https://x.fr/cb",
                "--grant",
                "password",
            ],
            "--grant",
        ),
        (
            vec![
                "client",
                "create",
                "c",
                "--redirect-uri",
                "https://x.fr/cb",
                "--auth-method",
                "nope",
            ],
            "--auth-method",
        ),
        (vec!["client", "create", "c"], "redirect-uri"),
        (
            vec![
                "client",
                "create",
                "c",
                "--redirect-uri",
                "https://x.fr/cb",
                "--min-acr",
                "urn:sesame:loa:9",
            ],
            "--min-acr",
        ),
        (
            vec![
                "client",
                "create",
                "c",
                "--public",
                "--redirect-uri",
                "https://x.fr/cb",
                "--grant",
                "client_credentials",
            ],
            "public",
        ),
    ] {
        let o = cli.run(&args, None);
        let (_, err) = text(&o);
        assert!(!o.status.success(), "{args:?} must fail");
        assert!(err.contains(expected), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (out, _) = text(&cli.run(&["client", "list", "--json"], None));
    assert_eq!(out.trim(), "[]", "nothing half-written");
}

#[test]
fn user_create_reads_the_password_from_stdin() {
    let cli = Cli::new();
    let o = cli.run(
        &[
            "user",
            "create",
            "jdupont",
            "--email",
            "j@x.fr",
            "--given-name",
            "Jeanne",
            "--password-stdin",
            "--json",
        ],
        Some("Tres#Secret1\n"),
    );
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["username"], "jdupont");
    for (args, stdin, expected) in [
        (
            vec![
                "user",
                "create",
                "jdupont",
                "--email",
                "j@x.fr",
                "--password-stdin",
            ],
            "Tres#Secret1",
            "already taken",
        ),
        (
            vec![
                "user",
                "create",
                "x y",
                "--email",
                "j@x.fr",
                "--password-stdin",
            ],
            "Tres#Secret1",
            "USERNAME",
        ),
        (
            vec!["user", "create", "k", "--email", "nope", "--password-stdin"],
            "Tres#Secret1",
            "--email",
        ),
        (
            vec![
                "user",
                "create",
                "k",
                "--email",
                "k@x.fr",
                "--password-stdin",
            ],
            "short",
            "characters",
        ),
    ] {
        let o = cli.run(&args, Some(stdin));
        assert!(!o.status.success(), "{args:?}");
        assert!(text(&o).1.contains(expected), "{args:?}: {}", text(&o).1);
    }
}

#[test]
fn keys_list_and_rotate() {
    let cli = Cli::new();
    let o = cli.run(&["keys", "list", "--json"], None);
    assert!(o.status.success(), "{}", text(&o).1);
    let before: Vec<serde_json::Value> = serde_json::from_str(text(&o).0.trim()).unwrap();
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|k| k["state"] == "active"));
    let o = cli.run(&["keys", "rotate", "--json"], None);
    assert!(o.status.success(), "{}", text(&o).1);
    let after: Vec<serde_json::Value> = serde_json::from_str(text(&o).0.trim()).unwrap();
    assert_eq!(after.len(), 6);
    assert_eq!(after.iter().filter(|k| k["state"] == "active").count(), 3);
    assert!(
        !text(&o).0.contains("private"),
        "no private material printed"
    );
}

#[test]
fn bad_settings_name_the_key_and_exit_non_zero() {
    let cli = Cli::new();
    for (env, expected) in [
        (("SESAME_ISSUER", "not a url"), "issuer"),
        (
            ("SESAME_ISSUER", "https://id.example.fr/"),
            "trailing slash",
        ),
        (
            ("SESAME_SESSION__IDLE_MINUTES", "soon"),
            "session.idle_minutes",
        ),
        (("SESAME_DATABASE_URL", "mysql://x"), "database_url"),
        (("SESAME_KEYS__ENCRYPTION_KEY", "short"), "encryption_key"),
        (
            ("SESAME_MTLS__CRL", "[\"ldap://ldap.example.fr/ca\"]"),
            "mtls.crl",
        ),
        (
            ("SESAME_MTLS__CRL_REFRESH_SECONDS", "0"),
            "mtls.crl_refresh_seconds",
        ),
    ] {
        let o = cli.run_env(&["keys", "list"], None, &[env]);
        let (_, err) = text(&o);
        assert!(!o.status.success(), "{env:?}");
        assert!(err.contains(expected), "{env:?}: {err}");
        assert!(!err.contains("panicked"));
    }
    let o = cli.run(&["--config", "missing.toml", "keys", "list"], None);
    assert!(text(&o).1.contains("missing.toml"));
    // An unknown setting is refused by name, but Kubernetes' service links are not settings.
    let o = cli.run_env(&["keys", "list"], None, &[("SESAME_LISTNE", "0.0.0.0:80")]);
    assert!(!o.status.success() && text(&o).1.contains("listne"));
    let o = cli.run_env(
        &["keys", "list"],
        None,
        &[
            ("SESAME_SERVICE_HOST", "10.0.0.7"),
            ("SESAME_PORT", "tcp://10.0.0.7:80"),
            ("SESAME_PORT_80_TCP_ADDR", "10.0.0.7"),
            ("SESAME_REDIS_SERVICE_HOST", "10.0.0.8"),
            ("SESAME_REDIS_PORT", "tcp://10.0.0.8:6379"),
            ("SESAME_REDIS_PORT_6379_TCP_PORT", "6379"),
        ],
    );
    assert!(o.status.success(), "{}", text(&o).1);
    std::fs::write(
        cli.dir.path().join("sesame.toml"),
        "issuer = \"http://127.0.0.1:9\"\nbogus = 1\n",
    )
    .unwrap();
    let o = cli.run(&["keys", "list"], None);
    assert!(
        text(&o).1.contains("bogus"),
        "unknown keys are named: {}",
        text(&o).1
    );
}

#[test]
fn migrate_on_a_fresh_folder() {
    let cli = Cli::new();
    let o = cli.run(&["migrate"], None);
    assert!(o.status.success(), "{}", text(&o).1);
    assert!(cli.dir.path().join("data/sesame.db").exists());
}
