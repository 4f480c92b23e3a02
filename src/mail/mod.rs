//! E-mails: rendered from `templates/mail/<locale>/` (text and HTML), put in the durable
//! outbox by the flow that sends them, and delivered by a worker over SMTP (lettre) or into
//! a folder of `.eml` files. An accepted mail survives an SMTP outage and a restart.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use minijinja::{Environment, Value, context};

use crate::config::{Branding, MailSettings};
use crate::domain::Email;
use crate::store::Db;
use crate::store::db::DbError;
use crate::store::db::outbox::{NewMail, OutgoingMail};
use crate::web::Locale;
use crate::web::templates::text;

/// A mail template, embedded at build time.
macro_rules! mail {
    ($name:literal) => {
        ($name, include_str!(concat!("../../templates/mail/", $name)))
    };
}

const TEMPLATES: &[(&str, &str)] = &[
    mail!("base.html"),
    mail!("fr/account_created.txt"),
    mail!("fr/password_reset_by_operator.txt"),
    mail!("fr/password_changed.txt"),
    mail!("fr/password_reset_link.txt"),
    mail!("fr/factor_added.txt"),
    mail!("fr/factor_removed.txt"),
    mail!("en/account_created.txt"),
    mail!("en/password_reset_by_operator.txt"),
    mail!("en/password_changed.txt"),
    mail!("en/password_reset_link.txt"),
    mail!("en/factor_added.txt"),
    mail!("en/factor_removed.txt"),
];

/// The mails Sésame sends.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// F1: identifier and temporary password.
    AccountCreated,
    /// F2: an operator reset the password.
    PasswordResetByOperator,
    /// F3/F4/F5: the password was changed.
    PasswordChanged,
    /// F4: the single-use link.
    PasswordResetLink,
    /// A sign-in method was added (TOTP…).
    FactorAdded,
    /// A sign-in method was removed.
    FactorRemoved,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::AccountCreated => "account_created",
            Kind::PasswordResetByOperator => "password_reset_by_operator",
            Kind::PasswordChanged => "password_changed",
            Kind::PasswordResetLink => "password_reset_link",
            Kind::FactorAdded => "factor_added",
            Kind::FactorRemoved => "factor_removed",
        }
    }
}

#[derive(Clone)]
pub struct Mailer {
    env: std::sync::Arc<Environment<'static>>,
    branding: Branding,
}

impl Mailer {
    pub fn new(branding: &Branding) -> Self {
        let mut env = Environment::new();
        env.set_auto_escape_callback(minijinja::default_auto_escape_callback);
        for (name, src) in TEMPLATES {
            env.add_template(name, src)
                .expect("embedded mail templates compile");
        }
        Self {
            env: std::sync::Arc::new(env),
            branding: branding.clone(),
        }
    }

    /// Renders a mail and puts it in the outbox; it is sent by the worker.
    pub async fn send(
        &self,
        db: &Db,
        to: &Email,
        locale: Locale,
        kind: Kind,
        ctx: Value,
    ) -> Result<(), DbError> {
        let (subject, text_body, html_body) = self.render(locale, kind, ctx);
        db.enqueue_mail(NewMail {
            to_addr: to.as_str(),
            subject: &subject,
            text_body: &text_body,
            html_body: &html_body,
        })
        .await
    }

    fn render(&self, locale: Locale, kind: Kind, ctx: Value) -> (String, String, String) {
        let ctx = context! { brand => Value::from(minijinja::value::Serde(self.branding.clone())), locale => locale.as_str(), ..ctx };
        let subject = format!(
            "{} – {}",
            self.branding.name,
            text(locale, &format!("mail.{}.subject", kind.name()))
        );
        let name = format!("{}/{}.txt", locale.as_str(), kind.name());
        let body = self
            .env
            .get_template(&name)
            .and_then(|t| t.render(&ctx))
            .unwrap_or_else(|e| {
                tracing::error!(template = %name, error = %e, "mail template failed");
                String::new()
            });
        let html = self
            .env
            .get_template("base.html")
            .and_then(|t| {
                t.render(context! { body => body.clone(), subject => subject.clone(), ..ctx })
            })
            .unwrap_or_default();
        (subject, body, html)
    }
}

/// Where mails go.
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(PathBuf),
}

/// Delivers due mails until the process stops; failed ones are retried with a doubling delay.
pub fn spawn_worker(db: Db, settings: MailSettings) -> Result<(), String> {
    let transport = match &settings.smtp_url {
        Some(url) => {
            let t: AsyncSmtpTransport<Tokio1Executor> =
                AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
                    .map_err(|e| format!("mail.smtp_url: {e}"))?
                    .timeout(Some(Duration::from_secs(10)))
                    .build();
            Transport::Smtp(t)
        }
        None => Transport::Folder(settings.outbox_dir.clone()),
    };
    let from: Mailbox = settings
        .from
        .parse()
        .map_err(|e| format!("mail.from: {e}"))?;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(settings.poll_seconds.max(1)));
        loop {
            tick.tick().await;
            if let Err(e) = deliver_due(&db, &transport, &from, settings.retry_seconds).await {
                tracing::warn!(error = %e, "mail outbox unavailable");
            }
        }
    });
    Ok(())
}

async fn deliver_due(
    db: &Db,
    transport: &Transport,
    from: &Mailbox,
    retry: u64,
) -> Result<(), DbError> {
    for mail in db.claim_due_mail(20, 120).await? {
        match send_one(transport, from, &mail).await {
            Ok(()) => db.mail_sent(mail.id).await?,
            Err(e) => {
                let delay = (retry.max(1) << mail.attempts.min(12)).min(3600) as i64;
                tracing::warn!(mail_id = mail.id, attempt = mail.attempts + 1, retry_in = delay, error = %e, "mail not sent yet");
                db.mail_failed(mail.id, delay, &e).await?;
            }
        }
    }
    Ok(())
}

async fn send_one(
    transport: &Transport,
    from: &Mailbox,
    mail: &OutgoingMail,
) -> Result<(), String> {
    let to: Mailbox = mail
        .to_addr
        .parse()
        .map_err(|e| format!("recipient: {e}"))?;
    let message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(mail.subject.clone())
        .multipart(MultiPart::alternative_plain_html(
            mail.text_body.clone(),
            mail.html_body.clone(),
        ))
        .map_err(|e| e.to_string())?;
    match transport {
        Transport::Smtp(t) => t.send(message).await.map(drop).map_err(|e| e.to_string()),
        Transport::Folder(dir) => {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| e.to_string())?;
            let path = dir.join(format!("{:010}.eml", mail.id));
            tokio::fs::write(&path, message.formatted())
                .await
                .map_err(|e| e.to_string())
        }
    }
}
