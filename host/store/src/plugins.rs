//! Installed plugins kept in the store, so that every replica on one database serves the same
//! ones: a plugin installed through one replica serves on all. Only a shared store (PostgreSQL)
//! keeps them; a SQLite store serves one server, whose plugins stay files in its plugin
//! directory (see [`crate::Store::plugins`]). Checking a component (compiling it, reading its
//! `info`) is the plugin manager's work, done before it reaches the store.

use wasmflow_core::Result;

/// What identifies and describes an installed plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlugin {
    pub name: String,
    pub version: String,
    /// The component's sha256, lowercase hex.
    pub sha256: String,
    pub loads: Vec<String>,
    pub description: String,
}

/// What [`PluginStore::insert_plugin`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Stored, or already stored with the same component.
    Stored,
    /// `name@version` is already installed with another component, whose sha256 this is.
    Conflict(String),
}

pub trait PluginStore: Send + Sync + 'static {
    /// Every installed plugin (built-in ones are not stored).
    fn list_plugins(&self) -> Result<Vec<StoredPlugin>>;
    /// The component whose sha256 is `sha256`, if an installed plugin has it.
    fn plugin_component(&self, sha256: &str) -> Result<Option<Vec<u8>>>;
    /// Stores a checked plugin and its component (whose sha256 the record holds).
    fn insert_plugin(&self, plugin: &StoredPlugin, component: &[u8]) -> Result<Inserted>;
    /// Removes every version of `name`, or only `version`; returns what it removed. A component
    /// no remaining plugin names goes with it.
    fn remove_plugins(&self, name: &str, version: Option<&str>) -> Result<Vec<StoredPlugin>>;
    /// A count that moves whenever plugins are installed or removed (by any process on the
    /// store), so that a reader re-reads only when it moved; `None` when the store cannot tell
    /// at the moment (PostgreSQL: its listening connection is down), and the reader must
    /// re-read on its own schedule. The first call starts the listening.
    fn plugin_changes(&self) -> Option<u64> {
        None
    }
}
