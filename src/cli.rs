//! The `sesame` command line. Every command takes `--config FILE`; commands that create
//! something take `--json` and then print one JSON object.

use std::io::Read;
use std::path::PathBuf;

use crate::demo::DemoArgs;
use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};
use serde_json::json;

use crate::config::Settings;
use crate::domain::client::NewClient;
use crate::domain::national_id::NationalId;
use crate::domain::password::{self, PasswordPolicy};
use crate::domain::{
    ClientId, Email, GrantType, IdTokenAlg, RedirectUri, TokenAuthMethod, Username,
};
use crate::hashing::Passwords;
use crate::keys::KeyRing;
use crate::mail::{Kind, Mailer};
use crate::server::{Server, shutdown_signal};
use crate::store::Db;
use crate::store::db::audit::AuditEvent;
use crate::store::db::users::NewUser;
use crate::web::Locale;
use minijinja::context;

#[derive(Parser, Debug)]
#[command(
    name = "sesame",
    version,
    about = "OpenID Connect identity provider for e-health portals"
)]
pub struct Cli {
    /// Settings file (default: sesame.toml if present).
    #[arg(long, global = true, env = "SESAME_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Run with embedded defaults, a demo user and a demo portal.
    Demo(DemoArgs),
    /// Apply database migrations.
    Migrate,
    /// Accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Portals (OAuth clients).
    #[command(subcommand)]
    Client(ClientCommand),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account; its identifier and a temporary password are e-mailed (F1).
    Create {
        username: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        given_name: Option<String>,
        #[arg(long)]
        family_name: Option<String>,
        /// Read a permanent password from standard input instead (no e-mail).
        #[arg(long)]
        password_stdin: bool,
        /// Language of the e-mail: fr (default) or en.
        #[arg(long, default_value = "fr")]
        locale: String,
        #[arg(long)]
        json: bool,
    },
    /// A new temporary password, e-mailed (F2); open sessions end.
    ResetPassword {
        username: String,
        #[arg(long, default_value = "fr")]
        locale: String,
    },
    /// Force a password change at the next sign-in.
    ExpirePassword { username: String },
    /// Lock an account: its sessions and tokens end.
    Disable { username: String },
    /// Unlock an account.
    Enable { username: String },
    /// List an account's sign-in means besides the password: TOTP, passkeys, bound cards.
    Factors {
        username: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove sign-in means (a lost phone or card, or after a compromise); the owner is
    /// e-mailed and the account's sessions end.
    RemoveFactors {
        username: String,
        /// A passkey, by the id `user factors` shows (repeatable).
        #[arg(long = "passkey")]
        passkeys: Vec<String>,
        /// The TOTP app and its recovery codes.
        #[arg(long)]
        totp: bool,
        /// A bound national identifier (repeatable).
        #[arg(long = "national-id")]
        national_ids: Vec<String>,
        /// Every passkey, the TOTP app and every bound card.
        #[arg(long)]
        all: bool,
    },
    /// Allow sign-in with a client certificate: any certificate carrying this national identifier.
    BindCertificate {
        username: String,
        /// A PEM certificate whose identifier (per `mtls.identity`) is bound.
        #[arg(
            long,
            conflicts_with = "national_id",
            required_unless_present = "national_id"
        )]
        cert: Option<PathBuf>,
        /// `8` + the 11-digit RPPS number.
        #[arg(long)]
        national_id: Option<String>,
    },
}

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

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// The published keys and which one signs.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Make new active keys; the old ones stay published until their tokens expire.
    Rotate {
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    crate::telemetry::init(settings.log_format);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Demo(args) => crate::demo::run(settings, args).await,
        Command::Migrate => {
            Db::open(&settings.database_url).await?;
            println!("migrations applied to {}", redact(&settings.database_url));
            Ok(())
        }
        Command::User(cmd) => user(settings, cmd).await,
        Command::Client(cmd) => client(settings, cmd).await,
        Command::Keys(cmd) => keys(settings, cmd).await,
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    let server = Server::build(settings).await?;
    server.run_until(shutdown_signal()).await?;
    Ok(())
}

/// A database URL without its password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

async fn user(settings: Settings, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create {
            username,
            email,
            given_name,
            family_name,
            password_stdin,
            locale,
            json,
        } => {
            // Everything is checked before the database is touched: nothing half-written.
            let username = Username::parse(&username)
                .map_err(anyhow::Error::msg)
                .context("USERNAME")?;
            let email = Email::parse(&email)
                .map_err(anyhow::Error::msg)
                .context("--email")?;
            let locale = parse_locale(&locale)?;
            let (password, temporary) = if password_stdin {
                let mut password = String::new();
                std::io::stdin()
                    .read_to_string(&mut password)
                    .context("reading the password from standard input")?;
                let password = password.trim_end_matches(['\n', '\r']).to_owned();
                let violations = PasswordPolicy::from_settings(&settings.password)
                    .check(&password, username.as_str());
                if !violations.is_empty() {
                    let reasons = crate::services::credentials::messages(Locale::En, &violations);
                    bail!("the password breaks the policy: {}", reasons.join(" "));
                }
                (password, false)
            } else {
                (password::temporary(), true)
            };
            let hash = Passwords::new(&settings.password)?.hash(&password).await?;
            let db = Db::open(&settings.database_url).await?;
            let new = NewUser {
                username,
                email,
                given_name,
                family_name,
                password_hash: hash,
                temporary,
            };
            let user = db.create_user(new).await?;
            db.audit(AuditEvent {
                event: "user_created",
                user_id: Some(&user.id),
                ..Default::default()
            })
            .await?;
            if temporary {
                let ctx = context! {
                    username => user.username.to_string(),
                    temporary_password => password,
                    valid_days => settings.password.temporary_validity_days,
                };
                Mailer::new(&settings.branding)
                    .send(&db, &user.email, locale, Kind::AccountCreated, ctx)
                    .await?;
            }
            if json {
                println!(
                    "{}",
                    json!({ "id": user.id, "username": user.username.as_str(), "temporary_password_emailed": temporary })
                );
            } else if temporary {
                println!(
                    "created {} (sub {}); the temporary password was e-mailed to {}",
                    user.username,
                    user.id,
                    user.email.as_str()
                );
            } else {
                println!("created {} (sub {})", user.username, user.id);
            }
            Ok(())
        }
        UserCommand::ResetPassword { username, locale } => {
            let locale = parse_locale(&locale)?;
            let (db, user) = find_user(&settings, &username).await?;
            let temporary = password::temporary();
            let hash = Passwords::new(&settings.password)?.hash(&temporary).await?;
            db.change_password(&user.id, &hash, true, settings.password.history)
                .await?;
            end_sessions(&settings, &db, &user.id).await?;
            let ctx = context! {
                username => user.username.to_string(),
                temporary_password => temporary,
                valid_days => settings.password.temporary_validity_days,
            };
            Mailer::new(&settings.branding)
                .send(&db, &user.email, locale, Kind::PasswordResetByOperator, ctx)
                .await?;
            db.audit(AuditEvent {
                event: "password_reset_by_operator",
                user_id: Some(&user.id),
                ..Default::default()
            })
            .await?;
            println!(
                "{}: new temporary password e-mailed to {}",
                user.username,
                user.email.as_str()
            );
            Ok(())
        }
        UserCommand::ExpirePassword { username } => {
            let (db, user) = find_user(&settings, &username).await?;
            db.set_password_expired(&user.id).await?;
            db.audit(AuditEvent {
                event: "password_expired_by_operator",
                user_id: Some(&user.id),
                ..Default::default()
            })
            .await?;
            println!(
                "{}: must change the password at the next sign-in",
                user.username
            );
            Ok(())
        }
        UserCommand::Disable { username } => {
            let (db, user) = find_user(&settings, &username).await?;
            db.set_disabled(&user.id, true).await?;
            end_sessions(&settings, &db, &user.id).await?;
            db.audit(AuditEvent {
                event: "user_disabled",
                user_id: Some(&user.id),
                ..Default::default()
            })
            .await?;
            println!("{}: disabled; sessions and tokens ended", user.username);
            Ok(())
        }
        UserCommand::BindCertificate {
            username,
            cert,
            national_id,
        } => {
            let id = match (cert, national_id) {
                (_, Some(raw)) => NationalId::parse(&raw)
                    .map_err(anyhow::Error::msg)
                    .context("--national-id")?,
                (Some(path), None) => {
                    use rustls_pki_types::pem::PemObject;
                    let der = rustls_pki_types::CertificateDer::from_pem_file(&path)
                        .with_context(|| format!("--cert {}", path.display()))?;
                    crate::tls::national_id(&der, settings.mtls.identity).context("--cert")?
                }
                (None, None) => bail!("give --cert or --national-id"),
            };
            let (db, user) = find_user(&settings, &username).await?;
            db.bind_certificate(id.as_str(), &user.id).await?;
            db.audit(AuditEvent {
                event: "certificate_bound",
                user_id: Some(&user.id),
                detail: Some(json!({ "national_id": id.as_str() })),
                ..Default::default()
            })
            .await?;
            // Every new sign-in means is told to the owner (ANS rules, CNIL).
            let locale = crate::web::Locale::Fr;
            let factor = format!(
                "{} ({id})",
                crate::web::templates::text(locale, "cert.factor")
            );
            let when = chrono::Utc::now().format("%d/%m/%Y %H:%M UTC").to_string();
            let ctx =
                context! { username => user.username.to_string(), factor => factor, when => when };
            Mailer::new(&settings.branding)
                .send(&db, &user.email, locale, Kind::FactorAdded, ctx)
                .await?;
            println!(
                "{}: certificates carrying {id} now sign in to this account",
                user.username
            );
            Ok(())
        }
        UserCommand::Factors { username, json } => {
            let (db, user) = find_user(&settings, &username).await?;
            let factors = Factors::of(&db, &user.id).await?;
            if json {
                println!("{}", serde_json::to_string(&factors)?);
            } else {
                println!("totp: {}", if factors.totp { "yes" } else { "no" });
                for p in &factors.passkeys {
                    println!("passkey {} \"{}\" (added {})", p.id, p.name, p.created_at);
                }
                for c in &factors.certificates {
                    println!("card {c}");
                }
            }
            Ok(())
        }
        UserCommand::RemoveFactors {
            username,
            passkeys,
            totp,
            national_ids,
            all,
        } => {
            let (db, user) = find_user(&settings, &username).await?;
            let held = Factors::of(&db, &user.id).await?;
            let passkeys = if all {
                held.passkeys.iter().map(|p| p.id.clone()).collect()
            } else {
                passkeys
            };
            let national_ids = if all {
                held.certificates.clone()
            } else {
                national_ids
            };
            if passkeys.is_empty() && national_ids.is_empty() && !(totp || all) {
                bail!("name what to remove: --passkey ID, --totp, --national-id ID or --all");
            }
            // Everything named must exist before anything goes: no half-done removal.
            for id in &passkeys {
                if !held.passkeys.iter().any(|p| &p.id == id) {
                    bail!("--passkey {id}: no such passkey on this account");
                }
            }
            for id in &national_ids {
                if !held.certificates.contains(id) {
                    bail!("--national-id {id}: not bound to this account");
                }
            }
            let mut removed = Vec::new();
            for id in &passkeys {
                if let Some(name) = db.delete_passkey(&user.id, id).await? {
                    removed.push(format!("passkey \"{name}\""));
                }
            }
            if (totp || all) && db.delete_totp(&user.id).await? {
                removed.push("TOTP".to_owned());
            }
            for id in &national_ids {
                if db.unbind_certificate(&user.id, id).await? {
                    removed.push(format!("card {id}"));
                }
            }
            if removed.is_empty() && !all {
                println!("{}: nothing to remove", user.username);
                return Ok(());
            }
            db.audit(AuditEvent {
                event: "factors_removed_by_operator",
                user_id: Some(&user.id),
                detail: Some(json!({ "removed": removed })),
                ..Default::default()
            })
            .await?;
            end_sessions(&settings, &db, &user.id).await?;
            if settings.redis_url.is_none() {
                eprintln!(
                    "warning: with the in-memory store this command cannot reach the server's sessions; \
                     disable the account (`sesame user disable`) to refuse them at once"
                );
            }
            if !removed.is_empty() {
                let when = chrono::Utc::now().format("%d/%m/%Y %H:%M UTC").to_string();
                let ctx = context! {
                    username => user.username.to_string(), factor => removed.join(", "), when => when,
                };
                Mailer::new(&settings.branding)
                    .send(&db, &user.email, Locale::Fr, Kind::FactorRemoved, ctx)
                    .await?;
            }
            println!(
                "{}: removed {}; sessions ended",
                user.username,
                removed.join(", ")
            );
            Ok(())
        }
        UserCommand::Enable { username } => {
            let (db, user) = find_user(&settings, &username).await?;
            db.set_disabled(&user.id, false).await?;
            db.audit(AuditEvent {
                event: "user_enabled",
                user_id: Some(&user.id),
                ..Default::default()
            })
            .await?;
            println!("{}: enabled", user.username);
            Ok(())
        }
    }
}

fn parse_locale(raw: &str) -> anyhow::Result<Locale> {
    match raw {
        "fr" => Ok(Locale::Fr),
        "en" => Ok(Locale::En),
        _ => bail!("--locale must be fr or en"),
    }
}

/// An account's sign-in means besides the password.
#[derive(serde::Serialize)]
struct Factors {
    totp: bool,
    passkeys: Vec<PasskeyInfo>,
    certificates: Vec<String>,
}

#[derive(serde::Serialize)]
struct PasskeyInfo {
    id: String,
    name: String,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl Factors {
    async fn of(db: &Db, user_id: &str) -> anyhow::Result<Self> {
        Ok(Self {
            totp: db.totp_secret(user_id).await?.is_some(),
            passkeys: db
                .passkeys_of(user_id)
                .await?
                .into_iter()
                .map(|p| PasskeyInfo {
                    id: p.id,
                    name: p.name,
                    created_at: p.created_at,
                    last_used_at: p.last_used_at,
                })
                .collect(),
            certificates: db.certificates_of(user_id).await?,
        })
    }
}

async fn find_user(
    settings: &Settings,
    username: &str,
) -> anyhow::Result<(Db, crate::domain::user::User)> {
    let name = Username::parse(username)
        .map_err(anyhow::Error::msg)
        .context("USERNAME")?;
    let db = Db::open(&settings.database_url).await?;
    let user = db
        .user_by_username(&name)
        .await?
        .with_context(|| format!("no account `{name}`"))?;
    Ok((db, user))
}

async fn end_sessions(settings: &Settings, db: &Db, user_id: &str) -> anyhow::Result<()> {
    let eph = crate::state::open_ephemeral(settings).await?;
    crate::services::session::end_all(db, &eph, user_id).await?;
    Ok(())
}

async fn client(settings: Settings, cmd: ClientCommand) -> anyhow::Result<()> {
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
                event: "client_created",
                client_id: Some(client.id.as_str()),
                ..Default::default()
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
                event: "client_deleted",
                client_id: Some(&client_id),
                ..Default::default()
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

async fn keys(settings: Settings, cmd: KeysCommand) -> anyhow::Result<()> {
    let db = Db::open(&settings.database_url).await?;
    let ring = KeyRing::open(&settings, &db).await?;
    let (infos, json) = match cmd {
        KeysCommand::List { json } => (ring.snapshot().infos.clone(), json),
        KeysCommand::Rotate { json } => {
            let infos = ring.rotate().await?;
            db.audit(AuditEvent {
                event: "keys_rotated",
                ..Default::default()
            })
            .await?;
            (infos, json)
        }
    };
    if json {
        println!("{}", serde_json::to_string(&infos)?);
    } else {
        for k in infos {
            println!(
                "{}\t{}\tgeneration {}\t{}",
                k.kid, k.alg, k.generation, k.state
            );
        }
    }
    Ok(())
}
