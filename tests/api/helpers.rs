//! The harness: start the real server on a free port over one of two backends, and drive it
//! as a browser (reqwest with a cookie jar, no automatic redirects) and as a portal (the
//! openidconnect crate).

use std::sync::OnceLock;

use reqwest::redirect::Policy;
use sesame::config::{RedisUrls, Settings};
use sesame::crypto::{random_token, token_hash};
use sesame::demo::{PortalClient, discover_client};
use sesame::domain::client::NewClient;
use sesame::domain::user::User;
use sesame::domain::{
    ClientId, Email, GrantType, IdTokenAlg, RedirectUri, TokenAuthMethod, Username,
};
use sesame::server::Server;
use sesame::state::AppState;
use sesame::store::db::users::NewUser;
use tokio::sync::oneshot;

pub const PG_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/test";
pub const REDIS: &str = "redis://127.0.0.1:6379";
pub const PASSWORD: &str = "Correct#Horse9";

/// Where a test's data lives.
#[derive(Clone, Debug)]
pub enum Backend {
    /// SQLite file + in-memory ephemeral store: the defaults.
    Embedded,
    /// A fresh PostgreSQL database + Redis under a fresh key prefix.
    External {
        database_url: String,
        redis_prefix: String,
    },
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

static EXTERNAL_UP: OnceLock<bool> = OnceLock::new();

impl Backend {
    /// A new PostgreSQL database and Redis prefix; `None` (test skipped) when the servers are
    /// not running, except under CI=true where that is a failure.
    pub async fn external() -> Option<Self> {
        let up = match EXTERNAL_UP.get() {
            Some(up) => *up,
            None => {
                let up = probe().await;
                *EXTERNAL_UP.get_or_init(|| up)
            }
        };
        if !up {
            assert!(
                !ci(),
                "CI=true but PostgreSQL ({PG_ADMIN}) or Redis ({REDIS}) is not reachable"
            );
            eprintln!(
                "skipped: PostgreSQL or Redis not reachable (set CI=true to make this a failure)"
            );
            return None;
        }
        let name = format!("sesame_t_{}", uuid::Uuid::new_v4().simple());
        admin_exec(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        Some(Backend::External {
            database_url: format!("postgres://postgres@127.0.0.1:5432/{name}"),
            redis_prefix: format!("t{}:", uuid::Uuid::new_v4().simple()),
        })
    }

    pub fn settings(&self, dir: &std::path::Path) -> Settings {
        let mut s = Settings {
            keys_dir: dir.join("keys"),
            ..Default::default()
        };
        s.mail.outbox_dir = dir.join("outbox");
        match self {
            Backend::Embedded => s.database_url = format!("sqlite://{}/sesame.db", dir.display()),
            Backend::External {
                database_url,
                redis_prefix,
            } => {
                s.database_url = database_url.clone();
                s.redis_url = Some(RedisUrls::One(REDIS.into()));
                s.redis_prefix = redis_prefix.clone();
            }
        }
        s
    }
}

async fn probe() -> bool {
    let pg = admin_exec("SELECT 1").await.is_ok();
    let redis = sesame::store::Ephemeral::redis(&[REDIS.into()], "probe:")
        .await
        .is_ok();
    pg && redis
}

async fn admin_exec(sql: &str) -> Result<(), sqlx::Error> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(PG_ADMIN).await?;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await?;
    conn.close().await
}

/// Runs a scenario on SQLite + memory, and on PostgreSQL + Redis.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Embedded).await
                }
            )*
        }
        mod postgres_redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(b) = $crate::helpers::Backend::external().await {
                        super::$name(b).await
                    }
                }
            )*
        }
    };
}

/// An issuer on `localhost` (passkeys need a domain name) still means 127.0.0.1.
fn loopback(issuer: &str, b: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
    let port = url::Url::parse(issuer)
        .ok()
        .and_then(|u| u.port())
        .unwrap_or(80);
    b.resolve(
        "localhost",
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
    )
}

pub struct TestApp {
    pub issuer: String,
    pub state: AppState,
    /// A plain HTTP client: no cookies, no redirects followed.
    pub http: reqwest::Client,
    pub dir: std::sync::Arc<tempfile::TempDir>,
    _stop: oneshot::Sender<()>,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, |_| {}).await
    }

    pub async fn spawn_with(backend: Backend, tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = std::sync::Arc::new(tempfile::tempdir().expect("tempdir"));
        Self::spawn_in(backend, dir, tweak).await
    }

    /// Another server process over the same data (a restart, or a second replica).
    pub async fn spawn_in(
        backend: Backend,
        dir: std::sync::Arc<tempfile::TempDir>,
        tweak: impl FnOnce(&mut Settings),
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let mut settings = backend.settings(dir.path());
        settings.issuer = format!("http://{addr}");
        settings.listen = addr;
        tweak(&mut settings);
        let server = Server::with_listener(settings.clone(), listener)
            .await
            .expect("server starts");
        let state = server.state().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        Self {
            issuer: settings.issuer.clone(),
            state,
            http: loopback(&settings.issuer, reqwest::Client::builder())
                .redirect(Policy::none())
                .build()
                .unwrap(),
            dir,
            _stop: stop,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.issuer)
    }

    /// Redeems `code` at /token as the portal `client` would (basic auth, PKCE verifier).
    pub async fn redeem(
        &self,
        client: &str,
        secret: &str,
        code: &str,
        verifier: &str,
    ) -> serde_json::Value {
        self.http
            .post(self.url("/token"))
            .basic_auth(client, Some(secret))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `redeem`, then the claims of the ID token it returned (signature checked).
    pub async fn id_claims(
        &self,
        client: &str,
        secret: &str,
        code: &str,
        verifier: &str,
    ) -> serde_json::Value {
        let t = self.redeem(client, secret, code, verifier).await;
        self.state
            .keys
            .verify_jwt(t["id_token"].as_str().expect("an ID token"))
            .expect("signed by us")
    }

    /// A server whose mail goes to an SMTP sink on loopback (outbox polled every second).
    pub async fn with_mail(
        backend: Backend,
        tweak: impl FnOnce(&mut Settings),
    ) -> (Self, crate::smtp::Sink) {
        let (sink, url) = crate::smtp::Sink::start("127.0.0.1:0").await;
        let app = Self::spawn_with(backend, |s| {
            s.mail.smtp_url = Some(url);
            s.mail.poll_seconds = 1;
            s.mail.retry_seconds = 1;
            tweak(s);
        })
        .await;
        (app, sink)
    }

    /// A browser signed in as `username` (password `PASSWORD`) through `client`'s sign-in.
    pub async fn signed_in(&self, username: &str, client: &str) -> Browser {
        let b = self.browser();
        let res = b
            .sign_in(
                &auth_request(&self.issuer, client, &[]).url,
                username,
                PASSWORD,
            )
            .await;
        assert_eq!(res.status(), 303, "{username} signs in");
        b
    }

    pub fn browser(&self) -> Browser {
        Browser {
            http: loopback(&self.issuer, reqwest::Client::builder())
                .redirect(Policy::none())
                .cookie_store(true)
                .build()
                .unwrap(),
            issuer: self.issuer.clone(),
        }
    }

    /// Enrols TOTP for `user` directly in the store; returns the secret (base32).
    pub async fn with_totp(&self, user: &User) -> String {
        let secret = totp_rs::Secret::generate().to_base32();
        let sealed = self
            .state
            .secrets
            .seal(&format!("totp:{}", user.id), secret.as_bytes());
        self.state
            .db
            .save_totp(&user.id, &sealed, 0, &[])
            .await
            .unwrap();
        secret
    }

    /// The answer of the page's captcha, read where the server keeps it: (id, answer).
    pub async fn captcha(&self, html: &str) -> (String, String) {
        let id = forms(html)
            .iter()
            .flat_map(|f| f.hidden.clone())
            .find(|(k, _)| k == "captcha_id")
            .expect("a captcha")
            .1;
        let answer = self
            .state
            .eph
            .get(&format!("captcha:{id}"))
            .await
            .unwrap()
            .expect("answer stored");
        (id, answer)
    }

    pub async fn create_user(&self, username: &str) -> User {
        let hash = self.state.passwords.hash(PASSWORD).await.unwrap();
        self.state
            .db
            .create_user(NewUser {
                username: Username::parse(username).unwrap(),
                email: Email::parse(&format!("{username}@example.fr")).unwrap(),
                given_name: Some("Alice".into()),
                family_name: Some("Durand".into()),
                password_hash: hash,
                temporary: false,
            })
            .await
            .unwrap()
    }

    /// Registers a portal; returns its secret (None for a public client).
    pub async fn create_client(&self, spec: ClientSpec) -> Option<String> {
        let uris = |v: &[String]| {
            v.iter()
                .map(|u| RedirectUri::parse(u).unwrap())
                .collect::<Vec<_>>()
        };
        let new = NewClient {
            id: ClientId::parse(&spec.id).unwrap(),
            redirect_uris: uris(&spec.redirect_uris),
            post_logout_redirect_uris: uris(&spec.post_logout_redirect_uris),
            backchannel_logout_uri: spec
                .backchannel_logout_uri
                .as_deref()
                .map(|u| RedirectUri::parse(u).unwrap()),
            auth_method: spec.auth_method,
            grants: spec.grants.clone(),
            first_party: spec.first_party,
            sensitive: spec.sensitive,
            min_acr: spec.min_acr.clone(),
            id_token_alg: spec.id_token_alg,
            allowed_scopes: spec.allowed_scopes.clone(),
            resources: spec.resources.clone(),
        };
        new.validate().unwrap();
        let secret = (spec.auth_method != TokenAuthMethod::None).then(random_token);
        self.state
            .db
            .create_client(&new, secret.as_deref().map(token_hash).as_deref())
            .await
            .unwrap();
        secret
    }

    /// The portal's openidconnect client, from discovery.
    pub async fn portal(
        &self,
        client_id: &str,
        secret: Option<&str>,
        redirect_uri: &str,
    ) -> PortalClient {
        discover_client(&self.http, &self.issuer, client_id, secret, redirect_uri)
            .await
            .unwrap()
    }

    pub async fn audit_events(&self) -> Vec<String> {
        self.state
            .db
            .recent_audit(100)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.event)
            .collect()
    }
}

pub struct ClientSpec {
    pub id: String,
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    pub auth_method: TokenAuthMethod,
    pub grants: Vec<GrantType>,
    pub first_party: bool,
    pub sensitive: bool,
    pub min_acr: Option<String>,
    pub id_token_alg: IdTokenAlg,
    pub allowed_scopes: Vec<String>,
    pub resources: Vec<String>,
}

pub const REDIRECT: &str = "https://portal.example.fr/cb";
pub const POST_LOGOUT: &str = "https://portal.example.fr/bye";

impl ClientSpec {
    /// A confidential first-party portal, client_secret_basic, code + refresh.
    pub fn portal(id: &str) -> Self {
        Self {
            id: id.into(),
            redirect_uris: vec![REDIRECT.into()],
            post_logout_redirect_uris: vec![POST_LOGOUT.into()],
            backchannel_logout_uri: None,
            auth_method: TokenAuthMethod::ClientSecretBasic,
            grants: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
            first_party: true,
            sensitive: false,
            min_acr: None,
            id_token_alg: IdTokenAlg::RS256,
            allowed_scopes: vec![],
            resources: vec![],
        }
    }
}

/// A browser: a cookie jar and manual redirects.
pub struct Browser {
    pub http: reqwest::Client,
    pub issuer: String,
}

/// A page's form: where it posts and its hidden fields.
#[derive(Debug)]
pub struct Form {
    pub action: String,
    pub hidden: Vec<(String, String)>,
}

pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The forms of an HTML page, in order (a few regexes suffice for our own pages).
pub fn forms(html: &str) -> Vec<Form> {
    html.split("<form")
        .skip(1)
        .map(|f| {
            let f = f.split("</form>").next().unwrap_or("");
            let attr = |tag: &str, name: &str| {
                tag.split(&format!("{name}=\""))
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .map(unescape)
            };
            let action = attr(f, "action").unwrap_or_default();
            let hidden = f
                .split("<input")
                .skip(1)
                .filter(|t| t.contains("type=\"hidden\""))
                .filter_map(|t| Some((attr(t, "name")?, attr(t, "value").unwrap_or_default())))
                .collect();
            Form { action, hidden }
        })
        .collect()
}

pub fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The query parameters of a URL.
pub fn query(url: &str) -> std::collections::HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

impl Browser {
    pub fn abs(&self, url: &str) -> String {
        if url.starts_with('/') {
            format!("{}{url}", self.issuer)
        } else {
            url.to_owned()
        }
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(self.abs(url)).send().await.unwrap()
    }

    pub async fn post(&self, url: &str, form: &[(String, String)]) -> reqwest::Response {
        self.http
            .post(self.abs(url))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Submits the page's form number `index` with extra fields.
    pub async fn submit(
        &self,
        html: &str,
        index: usize,
        fields: &[(&str, &str)],
    ) -> reqwest::Response {
        let f = forms(html)
            .into_iter()
            .nth(index)
            .expect("form on the page");
        // A field given here fills the page's field of that name (as a script would).
        let mut all = f.hidden.clone();
        all.retain(|(k, _)| !fields.iter().any(|(name, _)| name == k));
        all.extend(fields.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        self.post(&f.action, &all).await
    }

    /// Authorize → sign-in page → credentials; returns the response to the credentials POST.
    pub async fn sign_in(
        &self,
        authorize_url: &str,
        username: &str,
        password: &str,
    ) -> reqwest::Response {
        let res = self.get(authorize_url).await;
        assert_eq!(
            res.status(),
            303,
            "authorize should send the browser to the sign-in page"
        );
        let page = self.get(&location(&res)).await;
        assert_eq!(page.status(), 200);
        let html = page.text().await.unwrap();
        assert!(html.contains("name=\"password\""), "a sign-in form");
        self.submit(&html, 0, &[("username", username), ("password", password)])
            .await
    }
}

/// An authorization request URL with PKCE; returns (url, state, nonce, verifier).
pub struct AuthRequest {
    pub url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

pub fn auth_request(issuer: &str, client_id: &str, extra: &[(&str, &str)]) -> AuthRequest {
    let verifier = random_token();
    let challenge = sesame::crypto::b64url(sesame::crypto::sha256(&verifier));
    let (state, nonce) = (random_token(), random_token());
    let mut params: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", REDIRECT),
        ("scope", "openid profile email"),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    let q = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    AuthRequest {
        url: format!("{issuer}/authorize?{q}"),
        state,
        nonce,
        verifier,
    }
}

/// Runs the `sesame` binary against the app's stores, as an operator would.
pub fn cli(app: &TestApp, args: &[&str]) -> std::process::Output {
    let s = &app.state.settings;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_sesame"));
    cmd.args(args)
        .current_dir(app.dir.path())
        .env_remove("SESAME_CONFIG")
        .env("SESAME_DATABASE_URL", &s.database_url)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(sesame::config::RedisUrls::One(u)) = &s.redis_url {
        cmd.env("SESAME_REDIS_URL", u)
            .env("SESAME_REDIS_PREFIX", &s.redis_prefix);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The current TOTP code for `secret`.
pub fn totp_now(secret: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    sesame::domain::totp::authenticator(secret, "x", "x")
        .unwrap()
        .generate(now)
        .to_string()
}
