//! The `sesame` command line. Every command takes `--config FILE`; commands that create
//! something take `--json` and then print one JSON object.

use std::path::PathBuf;

mod client;
mod keys;
mod user;

use crate::demo::DemoArgs;
use clap::{Parser, Subcommand};
pub use client::{ClientArgs, ClientCommand};
pub use keys::KeysCommand;
pub use user::UserCommand;

use crate::config::Settings;
use crate::server::{Server, shutdown_signal};
use crate::store::Db;

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
        Command::User(cmd) => user::run(settings, cmd).await,
        Command::Client(cmd) => client::run(settings, cmd).await,
        Command::Keys(cmd) => keys::run(settings, cmd).await,
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
