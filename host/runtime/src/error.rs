//! What a plugin call can fail with, named for the caller (the HTTP layer maps each kind to a
//! status).

use std::fmt;

use crate::bindings::{ErrorKind, GuestError};

/// The class of a plugin failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginErrorKind {
    /// The plugin says the request's data does not fit the model.
    InvalidInput,
    /// The plugin cannot load the model's files.
    InvalidModel,
    /// The plugin does not implement what the model or request needs.
    Unsupported,
    /// The plugin reported an internal error.
    Internal,
    /// The plugin trapped (a panic, an out-of-bounds access, …); its instance was discarded.
    Trapped,
    /// The plugin ran past its deadline; its instance was discarded.
    Timeout,
    /// The plugin tried to grow its memory beyond the cap; its instance was discarded.
    OutOfMemory,
    /// The plugin returned data that breaks the contract (columns of different lengths, a
    /// tensor whose shape does not match its values).
    MalformedOutput,
    /// The component is not a flavor plugin, or the host cannot run it.
    Host,
}

impl PluginErrorKind {
    /// Whether the instance must be thrown away: its state may be broken.
    pub fn poisons_instance(self) -> bool {
        matches!(
            self,
            Self::Trapped | Self::Timeout | Self::OutOfMemory | Self::Host
        )
    }
}

/// A plugin call that failed, naming the plugin.
#[derive(Debug, Clone, thiserror::Error)]
#[error("plugin '{plugin}': {message}")]
pub struct PluginError {
    pub plugin: String,
    pub kind: PluginErrorKind,
    pub message: String,
}

impl PluginError {
    pub fn new(plugin: &str, kind: PluginErrorKind, message: impl fmt::Display) -> Self {
        Self {
            plugin: plugin.to_string(),
            kind,
            message: message.to_string(),
        }
    }

    pub(crate) fn from_guest(plugin: &str, error: GuestError) -> Self {
        let kind = match error.kind {
            ErrorKind::InvalidInput => PluginErrorKind::InvalidInput,
            ErrorKind::InvalidModel => PluginErrorKind::InvalidModel,
            ErrorKind::Unsupported => PluginErrorKind::Unsupported,
            ErrorKind::Internal => PluginErrorKind::Internal,
        };
        Self::new(plugin, kind, error.message)
    }
}
