//! `sesame keys …`: the signing keys.

use clap::Subcommand;

use crate::config::Settings;
use crate::domain::audit::Event;
use crate::keys::KeyRing;
use crate::store::Db;
use crate::store::db::audit::AuditEvent;

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

pub(super) async fn run(settings: Settings, cmd: KeysCommand) -> anyhow::Result<()> {
    let db = Db::open(&settings.database_url).await?;
    let ring = KeyRing::open(&settings, &db).await?;
    let (infos, json) = match cmd {
        KeysCommand::List { json } => (ring.snapshot().infos.clone(), json),
        KeysCommand::Rotate { json } => {
            let infos = ring.rotate().await?;
            db.audit(AuditEvent {
                ..AuditEvent::new(Event::KeysRotated)
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
