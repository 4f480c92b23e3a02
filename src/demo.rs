//! `sesame demo`: Sésame on its embedded defaults, a demo account, and a small portal on a
//! second port that signs in through Sésame exactly as a real e-health portal would, with
//! the openidconnect crate as its relying-party library. Certificate login works too, with
//! the demo's own test PKI ([`pki`]) and a card bound to the demo account.

pub mod pki;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::Deserialize;

use crate::config::Settings;
use crate::domain::client::NewClient;
use crate::domain::{
    ClientId as SesameClientId, Email, GrantType, IdTokenAlg, RedirectUri, TokenAuthMethod,
    Username,
};
use crate::server::{Server, shutdown_signal};
use crate::store::db::users::{CreateUserError, NewUser};

/// `sesame demo`'s options.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Where the demo portal listens.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub portal_listen: std::net::SocketAddr,
    /// Where the certificate-login (mTLS) listener listens, unless `mtls.client_ca` is set.
    #[arg(long, default_value = "127.0.0.1:8443")]
    pub mtls_listen: std::net::SocketAddr,
    /// The demo's test PKI (CA, server certificate, card), made here on first start.
    #[arg(long, default_value = "data/demo-pki")]
    pub pki_dir: std::path::PathBuf,
}

pub const DEMO_USER: &str = "demo";
pub const DEMO_PASSWORD: &str = "Demo#2026!";
pub const DEMO_CLIENT: &str = "demo-portal";

pub async fn run(mut settings: Settings, args: DemoArgs) -> anyhow::Result<()> {
    let portal_listen = args.portal_listen;
    // Browsers offer passkeys only on a domain name; `localhost` is one (and a secure context).
    if settings.issuer == Settings::default().issuer {
        settings.issuer = format!("http://localhost:{}", settings.listen.port());
    }
    // Certificate login on the demo PKI, unless the settings bring their own CA.
    let pki = match settings.mtls.client_ca {
        Some(_) => None,
        None => {
            let pki = pki::DemoPki::open_or_create(&args.pki_dir)?;
            settings.mtls.client_ca = Some(pki.ca());
            settings.tls.cert = Some(pki.server_cert());
            settings.tls.key = Some(pki.server_key());
            settings.mtls.listen = Some(args.mtls_listen);
            settings.mtls.url = Some(format!("https://{}", args.mtls_listen));
            // The demo CA's key is never written: it can issue nothing more, and there is
            // nothing to revoke, so it has no CRL.
            settings.mtls.crl_required = false;
            Some(pki)
        }
    };
    let server = Server::build(settings).await?;
    let state = server.state().clone();
    let portal_base = format!("http://{portal_listen}");

    let user = match state
        .db
        .create_user(NewUser {
            username: Username::parse(DEMO_USER).expect("valid"),
            email: Email::parse("demo@sesame.localhost").expect("valid"),
            given_name: Some("Camille".into()),
            family_name: Some("Martin".into()),
            password_hash: state.passwords.hash(DEMO_PASSWORD).await?,
            temporary: false,
        })
        .await
    {
        Ok(user) => user,
        Err(CreateUserError::Taken(_)) => state
            .db
            .user_by_username(&Username::parse(DEMO_USER).expect("valid"))
            .await?
            .context("the demo account vanished")?,
        Err(e) => return Err(e.into()),
    };
    // As `sesame user bind-certificate demo --national-id …` does.
    if let Some(pki) = &pki {
        state
            .db
            .bind_certificate(pki.national_id.as_str(), &user.id)
            .await?;
    }
    // The secret is kept only hashed, so the demo portal is registered afresh at each start.
    state.db.delete_client(DEMO_CLIENT).await?;
    let secret = crate::crypto::random_token();
    let uri = |p: &str| RedirectUri::parse(&format!("{portal_base}{p}")).expect("loopback URL");
    state
        .db
        .create_client(
            &NewClient {
                id: SesameClientId::parse(DEMO_CLIENT).expect("valid"),
                redirect_uris: vec![uri("/callback")],
                post_logout_redirect_uris: vec![uri("/")],
                backchannel_logout_uri: Some(uri("/backchannel-logout")),
                auth_method: TokenAuthMethod::ClientSecretBasic,
                grants: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
                first_party: true,
                sensitive: false,
                min_acr: None,
                id_token_alg: IdTokenAlg::RS256,
                allowed_scopes: Vec::new(),
                resources: Vec::new(),
            },
            Some(&crate::crypto::token_hash(&secret)),
        )
        .await?;

    let portal = Portal::new(state.issuer(), DEMO_CLIENT, &secret, &portal_base);
    let listener = tokio::net::TcpListener::bind(portal_listen)
        .await
        .with_context(|| format!("binding {portal_listen}"))?;
    tokio::spawn(async move { axum::serve(listener, portal.router()).await });

    println!(
        "\n  Sésame demo\n  ───────────\n  Identity provider: {issuer}\n  Demo portal:       {portal_base}   ← open this\n  Sign in as:        {DEMO_USER} / {DEMO_PASSWORD}\n{cards}\n  Ctrl-C stops both.\n",
        issuer = state.issuer(),
        cards = pki
            .as_ref()
            .map(|p| card_banner(p, &state.settings))
            .unwrap_or_default(),
    );
    server.run_until(shutdown_signal()).await?;
    Ok(())
}

/// How to use the demo card, for the banner.
fn card_banner(pki: &pki::DemoPki, s: &Settings) -> String {
    let listen = s.mtls.listen.map(|a| a.to_string()).unwrap_or_default();
    format!(
        "
  Certificate login (« Authentification par certificat client »), card {id} of {DEMO_USER}:
    Files:  {dir}/
      ca.pem    the demo CA: import it as an authority trusted for websites
                (Firefox: Settings › Privacy & Security › Certificates › View Certificates ›
                Authorities › Import; Chrome: Settings › Privacy and security › Security ›
                Manage certificates). It is limited to localhost and 127.0.0.0/8.
      card.p12  the card: import it under « Your Certificates » (password: {pw})
      card.pem, card.key  the same for curl or scripts
    Then choose « Authentification par certificat client » on the sign-in page; the card
    is asked for on https://{listen}.
",
        id = pki.national_id,
        dir = pki.dir.display(),
        pw = pki::P12_PASSWORD,
    )
}

/// The demo portal: a relying party with one confidential client.
#[derive(Clone)]
pub struct Portal {
    inner: Arc<PortalInner>,
}

struct PortalInner {
    issuer: String,
    client_id: String,
    secret: String,
    base: String,
    http: reqwest::Client,
    /// state → (PKCE verifier, nonce), for requests in flight.
    pending: Mutex<HashMap<String, (String, String)>>,
}

#[derive(Deserialize)]
struct Callback {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

impl Portal {
    pub fn new(issuer: &str, client_id: &str, secret: &str, base: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("HTTP client");
        Self {
            inner: Arc::new(PortalInner {
                issuer: issuer.to_owned(),
                client_id: client_id.to_owned(),
                secret: secret.to_owned(),
                base: base.to_owned(),
                http,
                pending: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(portal_home))
            .route("/login", get(portal_login))
            .route("/callback", get(portal_callback))
            .route(
                "/backchannel-logout",
                axum::routing::post(|| async { "ok" }),
            )
            .with_state(self)
    }

    async fn client(&self) -> anyhow::Result<PortalClient> {
        let i = &self.inner;
        discover_client(
            &i.http,
            &i.issuer,
            &i.client_id,
            Some(&i.secret),
            &format!("{}/callback", i.base),
        )
        .await
    }
}

/// A relying party's view of Sésame, as the openidconnect crate builds it from discovery.
pub type PortalClient = openidconnect::Client<
    openidconnect::EmptyAdditionalClaims,
    openidconnect::core::CoreAuthDisplay,
    openidconnect::core::CoreGenderClaim,
    openidconnect::core::CoreJweContentEncryptionAlgorithm,
    openidconnect::core::CoreJsonWebKey,
    openidconnect::core::CoreAuthPrompt,
    openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    openidconnect::core::CoreTokenResponse,
    openidconnect::core::CoreTokenIntrospectionResponse,
    openidconnect::core::CoreRevocableToken,
    openidconnect::core::CoreRevocationErrorResponse,
    openidconnect::EndpointSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointNotSet,
    openidconnect::EndpointMaybeSet,
    openidconnect::EndpointMaybeSet,
>;

/// Discovers Sésame at `issuer` and builds a client for it, as any portal would.
pub async fn discover_client(
    http: &reqwest::Client,
    issuer: &str,
    client_id: &str,
    secret: Option<&str>,
    redirect_uri: &str,
) -> anyhow::Result<PortalClient> {
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.to_owned())?, http).await?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.to_owned()),
        secret.map(|s| ClientSecret::new(s.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned())?))
}

fn page(body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=fr><meta charset=utf-8><title>Portail démo</title>\
         <body style=\"font-family:system-ui;max-width:44rem;margin:3rem auto\"><h1>Portail santé (démo)</h1>{body}</body></html>"
    ))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn portal_home() -> Html<String> {
    page(
        "<p>Ce portail délègue la connexion à Sésame.</p><p><a href=\"/login\">Se connecter avec Sésame</a></p>",
    )
}

async fn portal_login(State(portal): State<Portal>) -> Response {
    let client = match portal.client().await {
        Ok(c) => c,
        Err(e) => {
            return page(&format!("<p>Discovery failed: {}</p>", esc(&e.to_string())))
                .into_response();
        }
    };
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    portal
        .inner
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            state.secret().clone(),
            (verifier.secret().clone(), nonce.secret().clone()),
        );
    Redirect::to(url.as_str()).into_response()
}

async fn portal_callback(State(portal): State<Portal>, Query(cb): Query<Callback>) -> Html<String> {
    match signed_in(&portal, cb).await {
        Ok(html) => page(&html),
        Err(e) => page(&format!(
            "<p>Échec de la connexion : {}</p><p><a href=\"/login\">Réessayer</a></p>",
            esc(&format!("{e:#}"))
        )),
    }
}

async fn signed_in(portal: &Portal, cb: Callback) -> anyhow::Result<String> {
    if let Some(e) = cb.error {
        anyhow::bail!("{e}: {}", cb.error_description.unwrap_or_default());
    }
    let (code, state) = (cb.code.context("no code")?, cb.state.context("no state")?);
    let (verifier, nonce) = portal
        .inner
        .pending
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&state)
        .context("unknown state")?;
    let client = portal.client().await?;
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))?
        .set_pkce_verifier(PkceCodeVerifier::new(verifier))
        .request_async(&portal.inner.http)
        .await?;
    let id_token = tokens.id_token().context("no ID token")?;
    let claims = id_token.claims(&client.id_token_verifier(), &Nonce::new(nonce))?;
    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)?
        .request_async(&portal.inner.http)
        .await?;
    let name = info
        .name()
        .and_then(|n| n.get(None))
        .map(|n| n.as_str().to_owned())
        .unwrap_or_default();
    let logout = format!(
        "{}/logout?id_token_hint={}&post_logout_redirect_uri={}",
        portal.inner.issuer,
        id_token,
        url::form_urlencoded::byte_serialize(format!("{}/", portal.inner.base).as_bytes())
            .collect::<String>()
    );
    Ok(format!(
        "<p>Bonjour <strong>{}</strong>, vous êtes connecté.</p>\
         <h2>ID token</h2><pre>{}</pre><h2>UserInfo</h2><pre>{}</pre><p><a href=\"{}\">Se déconnecter</a></p>",
        esc(&name),
        esc(&serde_json::to_string_pretty(claims)?),
        esc(&serde_json::to_string_pretty(&info)?),
        esc(&logout)
    ))
}
