//! `sesame client …`: the portals (relying parties).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::config::Settings;
use crate::domain::audit::Event;
use crate::domain::client::NewClient;
use crate::domain::{ClientId, GrantType, IdTokenAlg, RedirectUri, TokenAuthMethod};
use crate::store::Db;
use crate::store::db::audit::AuditEvent;

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per run; boxing buys nothing
pub enum ClientCommand {
    /// Register a portal; prints its secret once.
    Create(ClientArgs),
    /// List portals.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a portal, its consents and its refresh tokens.
    Delete { client_id: String },
}

#[derive(Args, Debug)]
pub struct ClientArgs {
    pub client_id: String,
    #[arg(long = "redirect-uri")]
    pub redirect_uris: Vec<String>,
    /// A public client (no secret; PKCE required).
    #[arg(long)]
    pub public: bool,
    /// The platform's own portal: no consent page.
    #[arg(long)]
    pub first_party: bool,
    #[arg(long = "post-logout-redirect-uri")]
    pub post_logout_redirect_uris: Vec<String>,
    #[arg(long)]
    pub backchannel_logout_uri: Option<String>,
    /// client_secret_basic (default), client_secret_post, or none (= --public).
    #[arg(long)]
    pub auth_method: Option<String>,
    /// authorization_code, refresh_token, client_credentials (default: the first two).
    #[arg(long = "grant")]
    pub grants: Vec<String>,
    /// Requires strong authentication.
    #[arg(long)]
    pub sensitive: bool,
    /// The least acr its users must reach (one of the `acr.*` names of the settings).
    #[arg(long)]
    pub min_acr: Option<String>,
    /// RS256 (default), ES256 or EdDSA.
    #[arg(long, default_value = "RS256")]
    pub id_token_alg: String,
    /// An API scope allowed with client_credentials (repeatable).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    /// An API (resource indicator) it may get JWT access tokens for (repeatable).
    #[arg(long = "resource")]
    pub resources: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

pub(super) async fn run(settings: Settings, cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Create(args) => {
            let json = args.json;
            let new = new_client(args)?;
            if let Some(acr) = new.min_acr.as_deref().filter(|a| !settings.acr.is_known(a)) {
                anyhow::bail!(
                    "--min-acr {acr:?} is not a configured level (acr.password = {:?}, acr.two_factor = {:?})",
                    settings.acr.password,
                    settings.acr.two_factor
                );
            }
            let (secret, hash) = match new.auth_method {
                TokenAuthMethod::None => (None, None),
                _ => {
                    let s = crate::crypto::random_token();
                    let h = crate::crypto::token_hash(&s);
                    (Some(s), Some(h))
                }
            };
            let db = Db::open(&settings.database_url).await?;
            let client = db.create_client(&new, hash.as_deref()).await?;
            db.audit(AuditEvent {
                client_id: Some(client.id.as_str()),
                ..AuditEvent::new(Event::ClientCreated)
            })
            .await?;
            if json {
                println!(
                    "{}",
                    json!({ "client_id": client.id.as_str(), "client_secret": secret })
                );
            } else {
                println!("client_id:     {}", client.id);
                match secret {
                    Some(s) => println!("client_secret: {s}\n(shown once: store it now)"),
                    None => println!("public client: no secret, PKCE required"),
                }
            }
            Ok(())
        }
        ClientCommand::List { json } => {
            let db = Db::open(&settings.database_url).await?;
            let clients = db.clients().await?;
            if json {
                let list: Vec<_> = clients
                    .iter()
                    .map(|c| {
                        json!({
                            "client_id": c.id.as_str(),
                            "auth_method": c.auth_method.as_str(),
                            "redirect_uris": c.redirect_uris.iter().map(|r| r.as_str()).collect::<Vec<_>>(),
                            "grants": c.grants.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
                            "first_party": c.first_party,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                for c in clients {
                    let uris: Vec<&str> = c.redirect_uris.iter().map(|r| r.as_str()).collect();
                    println!("{}\t{}\t{}", c.id, c.auth_method, uris.join(" "));
                }
            }
            Ok(())
        }
        ClientCommand::Delete { client_id } => {
            let db = Db::open(&settings.database_url).await?;
            if !db.delete_client(&client_id).await? {
                bail!("no client `{client_id}`");
            }
            db.audit(AuditEvent {
                client_id: Some(&client_id),
                ..AuditEvent::new(Event::ClientDeleted)
            })
            .await?;
            println!("deleted {client_id}");
            Ok(())
        }
    }
}

fn new_client(a: ClientArgs) -> anyhow::Result<NewClient> {
    let uris = |list: &[String], flag: &str| -> anyhow::Result<Vec<RedirectUri>> {
        list.iter()
            .map(|u| {
                RedirectUri::parse(u)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| flag.to_owned())
            })
            .collect()
    };
    let auth_method = match (&a.auth_method, a.public) {
        (None, true) => TokenAuthMethod::None,
        (None, false) => TokenAuthMethod::ClientSecretBasic,
        (Some(m), public) => {
            let m: TokenAuthMethod = m
                .parse()
                .map_err(anyhow::Error::msg)
                .context("--auth-method")?;
            if public != (m == TokenAuthMethod::None) {
                bail!("--public goes with --auth-method none, and only with it");
            }
            m
        }
    };
    let grants = if a.grants.is_empty() {
        vec![GrantType::AuthorizationCode, GrantType::RefreshToken]
    } else {
        a.grants
            .iter()
            .map(|g| g.parse().map_err(anyhow::Error::msg).context("--grant"))
            .collect::<anyhow::Result<_>>()?
    };
    let new = NewClient {
        id: ClientId::parse(&a.client_id)
            .map_err(anyhow::Error::msg)
            .context("CLIENT_ID")?,
        redirect_uris: uris(&a.redirect_uris, "--redirect-uri")?,
        post_logout_redirect_uris: uris(
            &a.post_logout_redirect_uris,
            "--post-logout-redirect-uri",
        )?,
        backchannel_logout_uri: a
            .backchannel_logout_uri
            .as_deref()
            .map(|u| {
                RedirectUri::parse(u)
                    .map_err(anyhow::Error::msg)
                    .context("--backchannel-logout-uri")
            })
            .transpose()?,
        auth_method,
        grants,
        first_party: a.first_party,
        sensitive: a.sensitive,
        min_acr: a.min_acr,
        id_token_alg: a
            .id_token_alg
            .parse::<IdTokenAlg>()
            .map_err(anyhow::Error::msg)
            .context("--id-token-alg")?,
        allowed_scopes: a.scopes,
        resources: a.resources,
    };
    new.validate().map_err(anyhow::Error::msg)?;
    Ok(new)
}
