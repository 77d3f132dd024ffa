//! MLflow's model registry: registered models, their numbered versions, stages, tags and aliases
//! (`model_registry.proto`), the [`RegistryStore`] trait the server talks to, the validation
//! rules of MLflow's `validation.py` for them, and `models:/` URIs.

use serde::{Serialize, Serializer};
use wasmflow_core::entities::Tag;
use wasmflow_core::paging::Page;
use wasmflow_core::search::{Comparison, OrderBy};
use wasmflow_core::{Error, Result};

pub(crate) mod shared;
pub(crate) mod source;

pub const MAX_MODEL_REGISTRY_TAG_KEY_LENGTH: usize = 250;
pub const MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH: usize = 100_000;
pub const MAX_REGISTERED_MODEL_ALIAS_LENGTH: usize = 255;
pub const SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT: usize = 100;
pub const SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD: usize = 1000;
pub const SEARCH_MODEL_VERSION_MAX_RESULTS_DEFAULT: usize = 10_000;
pub const SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD: usize = 200_000;
/// The tag that marks a registered model as a prompt; searches leave prompts out unless asked.
pub const IS_PROMPT_TAG_KEY: &str = "mlflow.prompt.is_prompt";

/// A model version's stage. `Deleted_Internal` marks a deleted version and is never shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    None,
    Staging,
    Production,
    Archived,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::None,
        Stage::Staging,
        Stage::Production,
        Stage::Archived,
    ];
    /// The stored stage of a deleted version.
    pub const DELETED_INTERNAL: &'static str = "Deleted_Internal";

    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Staging => "Staging",
            Self::Production => "Production",
            Self::Archived => "Archived",
        }
    }

    /// MLflow's `get_canonical_stage`: any case in, the canonical spelling out.
    pub fn parse(stage: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(stage))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid Model Version stage: {stage}. Value must be one of None, Staging, \
                     Production, Archived."
                ))
            })
    }

    /// Staging and Production: the stages `archive_existing_versions` applies to.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Staging | Self::Production)
    }
}

fn version_as_string<S: Serializer>(version: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&version.to_string())
}

/// A model version in MLflow's wire shape (`ModelVersion` in model_registry.proto).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelVersion {
    pub name: String,
    #[serde(serialize_with = "version_as_string")]
    pub version: i64,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    pub current_stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub source: String,
    pub run_id: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    pub run_link: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The MLflow 3 logged model this version was registered from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// Where the version's files are (what get-download-uri answers); not on the wire.
    #[serde(skip)]
    pub storage_location: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AliasRef {
    pub alias: String,
    #[serde(serialize_with = "version_as_string")]
    pub version: i64,
}

/// A registered model in MLflow's wire shape (`RegisteredModel` in model_registry.proto).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The newest version in each stage.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latest_versions: Vec<ModelVersion>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<AliasRef>,
}

/// One change in the registry, for the audit trail and the UI.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegistryEvent {
    pub id: i64,
    pub timestamp: i64,
    pub user_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    pub kind: String,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone, Default)]
pub struct NewModelVersion {
    pub name: String,
    pub source: String,
    pub run_id: Option<String>,
    pub model_id: Option<String>,
    pub run_link: Option<String>,
    pub description: Option<String>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone)]
pub struct RegistrySearch {
    pub filter: Vec<Comparison>,
    pub order_by: Vec<OrderBy>,
    pub max_results: usize,
    pub page_token: Option<String>,
}

/// What a `models:/` URI resolves to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedModel {
    /// The registered model, unless the URI named a logged model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub source: String,
    /// Where the model's files are.
    pub artifact_uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
}

/// The registry. Mutations take the acting user (empty when unknown), which the event log
/// records with every change, in the same transaction.
pub trait RegistryStore: Send + Sync + 'static {
    fn create_registered_model(
        &self,
        user: &str,
        name: &str,
        tags: Vec<Tag>,
        description: Option<String>,
    ) -> Result<RegisteredModel>;
    fn get_registered_model(&self, name: &str) -> Result<RegisteredModel>;
    fn rename_registered_model(
        &self,
        user: &str,
        name: &str,
        new_name: &str,
    ) -> Result<RegisteredModel>;
    fn update_registered_model(
        &self,
        user: &str,
        name: &str,
        description: Option<String>,
    ) -> Result<RegisteredModel>;
    /// Deletes the model with its versions, tags and aliases.
    fn delete_registered_model(&self, user: &str, name: &str) -> Result<()>;
    fn search_registered_models(&self, search: &RegistrySearch) -> Result<Page<RegisteredModel>>;
    /// The newest version in each of `stages` (every stage when empty).
    fn get_latest_versions(&self, name: &str, stages: &[Stage]) -> Result<Vec<ModelVersion>>;
    fn set_registered_model_tag(&self, user: &str, name: &str, tag: Tag) -> Result<()>;
    fn delete_registered_model_tag(&self, user: &str, name: &str, key: &str) -> Result<()>;

    fn create_model_version(&self, user: &str, new: NewModelVersion) -> Result<ModelVersion>;
    fn get_model_version(&self, name: &str, version: i64) -> Result<ModelVersion>;
    fn update_model_version(
        &self,
        user: &str,
        name: &str,
        version: i64,
        description: Option<String>,
    ) -> Result<ModelVersion>;
    fn transition_model_version_stage(
        &self,
        user: &str,
        name: &str,
        version: i64,
        stage: Stage,
        archive_existing_versions: bool,
    ) -> Result<ModelVersion>;
    /// Deletes a version; aliases pointing at it go with it.
    fn delete_model_version(&self, user: &str, name: &str, version: i64) -> Result<()>;
    fn get_model_version_download_uri(&self, name: &str, version: i64) -> Result<String>;
    fn search_model_versions(&self, search: &RegistrySearch) -> Result<Page<ModelVersion>>;
    fn set_model_version_tag(&self, user: &str, name: &str, version: i64, tag: Tag) -> Result<()>;
    fn delete_model_version_tag(
        &self,
        user: &str,
        name: &str,
        version: i64,
        key: &str,
    ) -> Result<()>;

    fn set_registered_model_alias(
        &self,
        user: &str,
        name: &str,
        alias: &str,
        version: i64,
    ) -> Result<()>;
    fn delete_registered_model_alias(&self, user: &str, name: &str, alias: &str) -> Result<()>;
    /// The version an alias points to; `latest` is the newest version.
    fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion>;

    /// The changes to a model (and to one of its versions, when given), oldest first.
    fn registry_events(&self, name: &str, version: Option<i64>) -> Result<Vec<RegistryEvent>>;
    /// Resolves `models:/name/3`, `models:/name@alias`, `models:/name/Stage`,
    /// `models:/name/latest` and `models:/m-<id>`.
    fn resolve_model_uri(&self, uri: &str) -> Result<ResolvedModel>;
}

// ---- validation (MLflow's `validation.py`) ----

fn missing(name: &str) -> Error {
    Error::invalid(format!("Missing value for required parameter '{name}'."))
}

/// `_validate_model_name`: not blank, no `/` or `:`, and no path tricks.
pub fn validate_model_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(missing("name"));
    }
    if name.contains('/') || name.contains(':') {
        return Err(Error::invalid(format!(
            "Invalid model name '{name}'. Names cannot contain '/' or ':'."
        )));
    }
    if name == "." || name == ".." {
        return Err(Error::invalid(format!(
            "Invalid value '{name}' for parameter 'name' supplied: Names may be treated as files \
             in certain cases, and must not resolve to other names when treated as such. This \
             name would resolve to '{}'",
            if name == "." { "." } else { ".." }
        )));
    }
    Ok(())
}

/// `_validate_model_renaming`.
pub fn validate_new_model_name(new_name: &str) -> Result<()> {
    if new_name.trim().is_empty() {
        return Err(missing("new_name"));
    }
    validate_model_name(new_name)
}

/// `_validate_model_version`: versions are integers, sent as strings.
pub fn parse_version(version: &str) -> Result<i64> {
    version.trim().parse::<i64>().map_err(|_| {
        Error::invalid(format!(
            "Parameter 'version' must be an integer, got '{version}'."
        ))
    })
}

/// `_validate_model_alias_name`: `^[\w\-]*$`, not empty, at most 255 characters.
pub fn validate_alias(alias: &str) -> Result<()> {
    if alias.is_empty() {
        return Err(Error::invalid(
            "Registered model alias name cannot be empty.",
        ));
    }
    if !alias
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::invalid(format!(
            "Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores \
             (_), and dashes (-)."
        )));
    }
    wasmflow_core::validation::validate_length(
        "Registered model alias name",
        MAX_REGISTERED_MODEL_ALIAS_LENGTH,
        alias,
    )
}

/// `_validate_model_alias_name_reserved`: `latest` and `v<digits>` name versions already.
pub fn validate_alias_not_reserved(alias: &str) -> Result<()> {
    if alias.eq_ignore_ascii_case("latest") {
        return Err(Error::invalid(
            "'latest' alias name (case insensitive) is reserved.",
        ));
    }
    if is_version_alias(alias) {
        return Err(Error::invalid(format!(
            "Version alias name '{alias}' is reserved."
        )));
    }
    Ok(())
}

fn is_version_alias(alias: &str) -> bool {
    let mut chars = alias.chars();
    matches!(chars.next(), Some('v' | 'V')) && alias.len() > 1 && chars.all(|c| c.is_ascii_digit())
}

/// `_validate_registered_model_tag` / `_validate_model_version_tag`.
pub fn validate_registry_tag(tag: &Tag) -> Result<()> {
    wasmflow_core::validation::validate_key("key", &tag.key)?;
    wasmflow_core::validation::validate_length("key", MAX_MODEL_REGISTRY_TAG_KEY_LENGTH, &tag.key)?;
    wasmflow_core::validation::validate_length(
        "value",
        MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH,
        &tag.value,
    )
}

// ---- models:/ URIs ----

/// What a `models:/` URI names, before looking anything up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelUri {
    Version { name: String, version: i64 },
    Stage { name: String, stage: Stage },
    Latest { name: String },
    Alias { name: String, alias: String },
    LoggedModel { model_id: String },
}

/// Parses a `models:/` URI as MLflow's `_parse_model_uri` does.
pub fn parse_model_uri(uri: &str) -> Result<ModelUri> {
    let bad = || {
        Error::invalid(format!(
            "Not a proper models:/ URI: {uri}. Models URIs must be of the form \
             'models:/model_name/suffix' or 'models:/model_name@alias' where suffix is a model \
             version, stage, or the string 'latest' and where alias is a registered model \
             alias. Only one of suffix or alias can be defined at a time."
        ))
    };
    let rest = uri.strip_prefix("models:").ok_or_else(bad)?;
    // `models:/x` and `models:///x` (no authority) are the same place.
    let path = rest.trim_start_matches('/');
    if rest.len() == path.len() || rest.starts_with("//") && !rest.starts_with("///") {
        return Err(bad());
    }
    let path = path.trim_end_matches('/');
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        [single] if !single.is_empty() => {
            if let Some((name, alias)) = single.split_once('@') {
                if name.is_empty() || alias.is_empty() {
                    return Err(bad());
                }
                return Ok(ModelUri::Alias {
                    name: name.into(),
                    alias: alias.into(),
                });
            }
            Ok(ModelUri::LoggedModel {
                model_id: (*single).into(),
            })
        }
        [name, suffix] if !name.is_empty() && !suffix.is_empty() => {
            let name = (*name).to_string();
            if let Ok(version) = suffix.parse::<i64>() {
                Ok(ModelUri::Version { name, version })
            } else if suffix.eq_ignore_ascii_case("latest") {
                Ok(ModelUri::Latest { name })
            } else if let Ok(stage) = Stage::parse(suffix) {
                Ok(ModelUri::Stage { name, stage })
            } else {
                Err(bad())
            }
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmflow_core::ErrorCode;

    #[test]
    fn stages_are_canonical() {
        assert_eq!(Stage::parse("production").unwrap(), Stage::Production);
        assert_eq!(Stage::parse("NONE").unwrap(), Stage::None);
        let e = Stage::parse("bogus").unwrap_err();
        assert_eq!(
            e.message,
            "Invalid Model Version stage: bogus. Value must be one of None, Staging, Production, \
             Archived."
        );
        assert!(Stage::Staging.is_active() && !Stage::Archived.is_active());
    }

    #[test]
    fn model_names() {
        validate_model_name("fraud model-1.2").unwrap();
        for bad in ["", "  ", "a/b", "a:b", "..", "."] {
            let e = validate_model_name(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{bad}");
        }
        assert_eq!(
            validate_model_name("a/b").unwrap_err().message,
            "Invalid model name 'a/b'. Names cannot contain '/' or ':'."
        );
        assert!(
            validate_new_model_name("")
                .unwrap_err()
                .message
                .contains("'new_name'")
        );
    }

    #[test]
    fn aliases() {
        validate_alias("champion_2-b").unwrap();
        assert!(validate_alias("").is_err());
        assert!(
            validate_alias("bad alias")
                .unwrap_err()
                .message
                .contains("Invalid alias name")
        );
        assert!(validate_alias(&"a".repeat(256)).is_err());
        assert!(
            validate_alias_not_reserved("LATEST")
                .unwrap_err()
                .message
                .contains("reserved")
        );
        assert_eq!(
            validate_alias_not_reserved("v12").unwrap_err().message,
            "Version alias name 'v12' is reserved."
        );
        validate_alias_not_reserved("v").unwrap();
        validate_alias_not_reserved("v1a").unwrap();
        validate_alias_not_reserved("version").unwrap();
    }

    #[test]
    fn versions() {
        assert_eq!(parse_version("3").unwrap(), 3);
        assert_eq!(
            parse_version("x").unwrap_err().message,
            "Parameter 'version' must be an integer, got 'x'."
        );
    }

    #[test]
    fn model_uris() {
        assert_eq!(
            parse_model_uri("models:/m/3").unwrap(),
            ModelUri::Version {
                name: "m".into(),
                version: 3
            }
        );
        assert_eq!(
            parse_model_uri("models:/my model@champ").unwrap(),
            ModelUri::Alias {
                name: "my model".into(),
                alias: "champ".into()
            }
        );
        assert_eq!(
            parse_model_uri("models:/m/production").unwrap(),
            ModelUri::Stage {
                name: "m".into(),
                stage: Stage::Production
            }
        );
        assert_eq!(
            parse_model_uri("models:/m/Latest").unwrap(),
            ModelUri::Latest { name: "m".into() }
        );
        assert_eq!(
            parse_model_uri("models:/m-0123abcd").unwrap(),
            ModelUri::LoggedModel {
                model_id: "m-0123abcd".into()
            }
        );
        assert_eq!(
            parse_model_uri("models:///m/1/").unwrap(),
            ModelUri::Version {
                name: "m".into(),
                version: 1
            }
        );
        for bad in [
            "runs:/abc/model",
            "models:m/1",
            "models:/",
            "models:/m/1/extra",
            "models:/m/bogus",
            "models:/@a",
            "models:/m@",
            "models://host/m/1",
        ] {
            let e = parse_model_uri(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{bad}");
        }
    }
}
