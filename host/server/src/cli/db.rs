//! `wasmflow db upgrade URI`: brings a backend store's schema to this binary's version, as
//! `mlflow db upgrade` does. The server also upgrades on start; this runs the migrations ahead
//! of a deployment, or on a database the servers' user may not alter.

use anyhow::Context as _;

#[derive(clap::Args)]
pub struct DbArgs {
    #[command(subcommand)]
    command: DbCommand,
}

#[derive(clap::Subcommand)]
enum DbCommand {
    /// Run the migrations the database lacks: `sqlite:///PATH`, a file path, or
    /// `postgresql://USER:PASSWORD@HOST:PORT/DATABASE` (`postgresql+psycopg2://` too).
    Upgrade {
        /// The backend store uri, as `wasmflow server --backend-store-uri` takes it.
        url: String,
    },
}

pub fn run(args: DbArgs) -> anyhow::Result<()> {
    match args.command {
        DbCommand::Upgrade { url } => {
            let shown = wasmflow_store::redact_password(&url);
            let done = wasmflow_store::upgrade(&url)
                .map_err(|e| anyhow::Error::msg(e.message))
                .with_context(|| format!("cannot upgrade the database '{shown}'"))?;
            if done.from == done.to {
                println!("'{shown}' is up to date (schema version {})", done.to);
            } else {
                println!(
                    "upgraded '{shown}' from schema version {} to {}",
                    done.from, done.to
                );
            }
            Ok(())
        }
    }
}
