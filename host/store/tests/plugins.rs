//! Installed plugins in a shared store: what one process installs or removes, another on the same
//! database hears of through PostgreSQL's LISTEN/NOTIFY (a SQLite store keeps no plugins).

mod common;

use std::time::{Duration, Instant};

use wasmflow_store::{Inserted, PgStore, PluginStore, StoredPlugin};

/// Generous: only says that the notification arrives, not how fast.
const WAIT: Duration = Duration::from_secs(20);

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "{what} within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn installs_and_removals_are_announced_to_other_processes() {
    let Some((db, installer)) = common::pg_store() else {
        return;
    };
    let config = wasmflow_store::StoreConfig {
        default_artifact_root: "mlflow-artifacts:/".into(),
    };
    // Another replica's store on the same database.
    let replica = PgStore::open(db.uri(), config).unwrap();

    // The first call starts the listening.
    wait_for("the listener connects", || {
        replica.plugin_changes().is_some()
    });
    let before = replica.plugin_changes().unwrap();

    let component = b"\0asm component bytes".to_vec();
    let plugin = StoredPlugin {
        name: "announced".into(),
        version: "1.0.0".into(),
        sha256: "ab".repeat(32),
        loads: vec!["announced".into()],
        description: "a plugin another process installs".into(),
    };
    assert_eq!(
        installer.insert_plugin(&plugin, &component).unwrap(),
        Inserted::Stored
    );
    wait_for("the install is announced", || {
        replica.plugin_changes().is_some_and(|n| n > before)
    });
    assert_eq!(replica.list_plugins().unwrap(), vec![plugin.clone()]);

    let after_install = replica.plugin_changes().unwrap();
    assert_eq!(
        installer.remove_plugins("announced", None).unwrap(),
        vec![plugin]
    );
    wait_for("the removal is announced", || {
        replica.plugin_changes().is_some_and(|n| n > after_install)
    });
    assert!(replica.list_plugins().unwrap().is_empty());
}
