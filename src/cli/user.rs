//! `sesame user …`: accounts (F1, F2), their state and their sign-in means.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::config::Settings;
use crate::domain::audit::Event;
use crate::domain::national_id::NationalId;
use crate::domain::password::{self, PasswordPolicy};
use crate::domain::{Email, Username};
use crate::hashing::Passwords;
use crate::mail::{Kind, Mailer};
use crate::store::Db;
use crate::store::db::audit::AuditEvent;
use crate::store::db::users::NewUser;
use crate::web::Locale;
use minijinja::context;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create an account; its identifier and a temporary password are e-mailed (F1).
    Create(CreateArgs),
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
    RemoveFactors(RemoveFactorsArgs),
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

/// Create an account; its identifier and a temporary password are e-mailed (F1).
#[derive(Args, Debug)]
pub struct CreateArgs {
    pub username: String,
    #[arg(long)]
    pub email: String,
    #[arg(long)]
    pub given_name: Option<String>,
    #[arg(long)]
    pub family_name: Option<String>,
    /// Read a permanent password from standard input instead (no e-mail).
    #[arg(long)]
    pub password_stdin: bool,
    /// Language of the e-mail: fr (default) or en.
    #[arg(long, default_value = "fr")]
    pub locale: String,
    #[arg(long)]
    pub json: bool,
}

/// Remove sign-in means (a lost phone or card, or after a compromise); the owner is
/// e-mailed and the account's sessions end.
#[derive(Args, Debug)]
pub struct RemoveFactorsArgs {
    pub username: String,
    /// A passkey, by the id `user factors` shows (repeatable).
    #[arg(long = "passkey")]
    pub passkeys: Vec<String>,
    /// The TOTP app and its recovery codes.
    #[arg(long)]
    pub totp: bool,
    /// A bound national identifier (repeatable).
    #[arg(long = "national-id")]
    pub national_ids: Vec<String>,
    /// Every passkey, the TOTP app and every bound card.
    #[arg(long)]
    pub all: bool,
}

/// `sesame user …`: one function per command.
pub(super) async fn run(settings: Settings, cmd: UserCommand) -> anyhow::Result<()> {
    match cmd {
        UserCommand::Create(args) => create(settings, args).await,
        UserCommand::ResetPassword { username, locale } => {
            reset_password(settings, username, locale).await
        }
        UserCommand::ExpirePassword { username } => expire_password(settings, username).await,
        UserCommand::Disable { username } => disable(settings, username).await,
        UserCommand::BindCertificate {
            username,
            cert,
            national_id,
        } => bind_certificate(settings, username, cert, national_id).await,
        UserCommand::Factors { username, json } => factors(settings, username, json).await,
        UserCommand::RemoveFactors(args) => remove_factors(settings, args).await,
        UserCommand::Enable { username } => enable(settings, username).await,
    }
}

async fn create(settings: Settings, args: CreateArgs) -> anyhow::Result<()> {
    let CreateArgs {
        username,
        email,
        given_name,
        family_name,
        password_stdin,
        locale,
        json,
    } = args;
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
        let violations =
            PasswordPolicy::from_settings(&settings.password).check(&password, username.as_str());
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
        user_id: Some(&user.id),
        ..AuditEvent::new(Event::UserCreated)
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

async fn reset_password(
    settings: Settings,
    username: String,
    locale: String,
) -> anyhow::Result<()> {
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
        user_id: Some(&user.id),
        ..AuditEvent::new(Event::PasswordResetByOperator)
    })
    .await?;
    println!(
        "{}: new temporary password e-mailed to {}",
        user.username,
        user.email.as_str()
    );
    Ok(())
}

async fn expire_password(settings: Settings, username: String) -> anyhow::Result<()> {
    let (db, user) = find_user(&settings, &username).await?;
    db.set_password_expired(&user.id).await?;
    db.audit(AuditEvent {
        user_id: Some(&user.id),
        ..AuditEvent::new(Event::PasswordExpiredByOperator)
    })
    .await?;
    println!(
        "{}: must change the password at the next sign-in",
        user.username
    );
    Ok(())
}

async fn disable(settings: Settings, username: String) -> anyhow::Result<()> {
    let (db, user) = find_user(&settings, &username).await?;
    db.set_disabled(&user.id, true).await?;
    end_sessions(&settings, &db, &user.id).await?;
    db.audit(AuditEvent {
        user_id: Some(&user.id),
        ..AuditEvent::new(Event::UserDisabled)
    })
    .await?;
    println!("{}: disabled; sessions and tokens ended", user.username);
    Ok(())
}

async fn bind_certificate(
    settings: Settings,
    username: String,
    cert: Option<PathBuf>,
    national_id: Option<String>,
) -> anyhow::Result<()> {
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
        user_id: Some(&user.id),
        detail: Some(json!({ "national_id": id.as_str() })),
        ..AuditEvent::new(Event::CertificateBound)
    })
    .await?;
    // Every new sign-in means is told to the owner (ANS rules, CNIL).
    let locale = crate::web::Locale::Fr;
    let factor = format!(
        "{} ({id})",
        crate::web::templates::text(locale, "cert.factor")
    );
    let when = chrono::Utc::now().format("%d/%m/%Y %H:%M UTC").to_string();
    let ctx = context! { username => user.username.to_string(), factor => factor, when => when };
    Mailer::new(&settings.branding)
        .send(&db, &user.email, locale, Kind::FactorAdded, ctx)
        .await?;
    println!(
        "{}: certificates carrying {id} now sign in to this account",
        user.username
    );
    Ok(())
}

async fn factors(settings: Settings, username: String, json: bool) -> anyhow::Result<()> {
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

async fn remove_factors(settings: Settings, args: RemoveFactorsArgs) -> anyhow::Result<()> {
    let RemoveFactorsArgs {
        username,
        passkeys,
        totp,
        national_ids,
        all,
    } = args;
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
        user_id: Some(&user.id),
        detail: Some(json!({ "removed": removed })),
        ..AuditEvent::new(Event::FactorsRemovedByOperator)
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

async fn enable(settings: Settings, username: String) -> anyhow::Result<()> {
    let (db, user) = find_user(&settings, &username).await?;
    db.set_disabled(&user.id, false).await?;
    db.audit(AuditEvent {
        user_id: Some(&user.id),
        ..AuditEvent::new(Event::UserEnabled)
    })
    .await?;
    println!("{}: enabled", user.username);
    Ok(())
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
