//! `wasmflow gc`: permanently deletes runs and experiments in the `deleted` lifecycle stage, with
//! their artifacts, as `mlflow gc` does. It works on the store directly (as MLflow's does), so it
//! can run while a server uses the same SQLite file.

use anyhow::{Context as _, bail};
use wasmflow_artifacts::{ArtifactRepository as _, Location, ObjectLocation};
use wasmflow_store::StoreConfig;

#[derive(clap::Args)]
pub struct GcArgs {
    /// Only what was deleted longer ago than this, in `#d#h#m#s` form (e.g. `1d2h`, `1.5h`).
    #[arg(long)]
    older_than: Option<String>,
    /// The store to clean.
    #[arg(
        long,
        env = "MLFLOW_BACKEND_STORE_URI",
        default_value = "sqlite:///mlflow.db"
    )]
    backend_store_uri: String,
    /// Where `mlflow-artifacts:` URIs point (the server's --artifacts-destination: a directory
    /// or an object store's URI).
    #[arg(
        long,
        env = "MLFLOW_ARTIFACTS_DESTINATION",
        default_value = "./mlartifacts"
    )]
    artifacts_destination: String,
    /// Comma-separated runs to delete (each must be in the deleted stage); all deleted runs
    /// when absent.
    #[arg(long)]
    run_ids: Option<String>,
    /// Comma-separated experiments to delete with all their runs (each must be in the deleted
    /// stage); all deleted experiments when absent.
    #[arg(long)]
    experiment_ids: Option<String>,
    /// Also delete every trace (with its spans and assessments) that started longer ago than
    /// this, in `#d#h#m#s` form; traces are kept when absent.
    #[arg(long, value_name = "AGE")]
    traces_older_than: Option<String>,
}

pub fn run(args: GcArgs) -> anyhow::Result<()> {
    let older_than = match &args.older_than {
        Some(text) => parse_age(text)?,
        None => 0,
    };
    let store = wasmflow_store::open(
        &args.backend_store_uri,
        StoreConfig {
            default_artifact_root: "./mlruns".into(),
        },
    )
    .with_context(|| format!("cannot open the backend store '{}'", args.backend_store_uri))?;
    let destination = wasmflow_artifacts::parse_location(&args.artifacts_destination)
        .map_err(|e| anyhow::anyhow!("invalid --artifacts-destination: {e}"))?;
    let old_enough = store.deleted_run_ids(older_than)?;
    let runs = match &args.run_ids {
        Some(ids) => split_ids(ids),
        None => old_enough.clone(),
    };
    if let Some(text) = &args.older_than
        && let Some(young) = runs.iter().find(|id| !old_enough.contains(id))
    {
        // A run that is not deleted at all gets purge_run's own error below.
        if store
            .get_run(young)
            .is_ok_and(|r| r.info.lifecycle_stage.as_str() == "deleted")
        {
            bail!(
                "run {young} is not older than the required age; only runs older than {text} \
                 can be deleted"
            );
        }
    }
    let experiments = match &args.experiment_ids {
        Some(ids) => split_ids(ids),
        None => store.deleted_experiment_ids(older_than)?,
    };
    for run_id in &runs {
        let uri = store.purge_run(run_id)?;
        remove_artifacts(&uri, Some(&destination));
        println!("Run with ID {run_id} has been permanently deleted.");
    }
    for experiment_id in &experiments {
        for uri in store.purge_experiment(experiment_id)? {
            remove_artifacts(&uri, Some(&destination));
        }
        println!("Experiment with ID {experiment_id} has been permanently deleted.");
    }
    if let Some(text) = &args.traces_older_than {
        let age = parse_age(text)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let n = crate::traces::retention::delete_before(
            &*store,
            &*store,
            Some(&destination),
            now - age,
        )?;
        println!("{n} traces older than {text} have been permanently deleted.");
    }
    Ok(())
}

fn split_ids(ids: &str) -> Vec<String> {
    ids.split(',')
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .collect()
}

/// `--older-than` in milliseconds: `#d#h#m#s`, each part optional and possibly fractional.
fn parse_age(text: &str) -> anyhow::Result<i64> {
    let invalid = || {
        anyhow::anyhow!(
            "could not parse any time information from '{text}'; examples of valid strings: \
             '8h', '2d8h5m20s', '2m4s'"
        )
    };
    let mut total = 0.0;
    let mut rest = text.trim();
    // The units must come in this order, as in MLflow's pattern.
    let mut units = [('d', 86_400.0), ('h', 3_600.0), ('m', 60.0), ('s', 1.0)].iter();
    if rest.is_empty() {
        return Err(invalid());
    }
    while !rest.is_empty() {
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(invalid)?;
        let (number, tail) = rest.split_at(end);
        let unit = tail.chars().next().ok_or_else(invalid)?;
        let seconds = units
            .by_ref()
            .find(|(u, _)| *u == unit)
            .map(|(_, s)| *s)
            .ok_or_else(invalid)?;
        let value: f64 = number.parse().map_err(|_| invalid())?;
        total += value * seconds;
        rest = &tail[1..];
    }
    Ok((total * 1000.0) as i64)
}

/// Removes the files behind an artifact URI (a directory of this machine or an object store's
/// prefix); other schemes are left alone with a warning, as `mlflow gc` skips artifacts it cannot
/// reach. `destination` is where `mlflow-artifacts:` URIs point (none: the server proxies no
/// artifacts, and such URIs are left alone too).
pub(crate) fn remove_artifacts(uri: &str, destination: Option<&Location>) {
    let target = match target_of(uri, destination) {
        Ok(Some(target)) => target,
        Ok(None) => {
            eprintln!(
                "warning: artifacts at '{uri}' are not in a store wasmflow reads; left in place"
            );
            return;
        }
        Err(e) => {
            eprintln!("warning: artifacts at '{uri}' left in place: {e}");
            return;
        }
    };
    match target {
        Location::Local(dir) => match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => eprintln!("warning: cannot remove '{}': {e}", dir.display()),
        },
        Location::Object(location) => {
            if let Err(e) = remove_prefix(&location) {
                eprintln!("warning: artifacts at '{uri}' left in place: {e:#}");
            }
        }
    }
}

/// Deletes every object under an object store's prefix.
fn remove_prefix(location: &ObjectLocation) -> anyhow::Result<()> {
    // The repository of the parent prefix deletes the last component (a repository refuses to
    // delete its own root).
    let (parent, name) = location
        .prefix
        .rsplit_once('/')
        .unwrap_or(("", &location.prefix));
    if name.is_empty() {
        bail!("it names a whole bucket");
    }
    let repo = wasmflow_artifacts::open_object(&ObjectLocation {
        prefix: parent.to_string(),
        ..location.clone()
    })
    .map_err(anyhow::Error::msg)?;
    match super::block_on(repo.delete(name))? {
        Ok(()) => Ok(()),
        // Nothing was logged there.
        Err(e) if e.code == wasmflow_core::ErrorCode::ResourceDoesNotExist => Ok(()),
        Err(e) => bail!("{}", e.message),
    }
}

/// Where the artifacts of `uri` are; `None` for a scheme no repository here reads.
fn target_of(uri: &str, destination: Option<&Location>) -> anyhow::Result<Option<Location>> {
    if let Some(path) = wasmflow_artifacts::proxied_path_of(uri) {
        let Some(destination) = destination else {
            return Ok(None);
        };
        let path = wasmflow_artifacts::sanitize_relative_path(&path)?;
        if path.is_empty() {
            bail!("it names the whole artifact root");
        }
        return Ok(Some(destination.join(&path)));
    }
    Ok(wasmflow_artifacts::parse_location(uri).ok())
}

#[cfg(test)]
mod tests {
    use super::parse_age;

    #[test]
    fn ages_read_as_mlflow_reads_them() {
        assert_eq!(
            parse_age("1d2h3m4s").unwrap(),
            ((86_400 + 7_200 + 180 + 4) * 1000)
        );
        assert_eq!(parse_age("1.5h").unwrap(), 5_400_000);
        assert_eq!(parse_age("30s").unwrap(), 30_000);
        assert_eq!(parse_age("2m4s").unwrap(), 124_000);
        for bad in ["", "5", "1s2m", "1x", "h", "1d1d"] {
            assert!(parse_age(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
