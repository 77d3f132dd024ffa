//! MLflow's webhooks (`webhooks.proto`, MLflow 3.3+): the entities in their wire shape, the
//! entity/action pairs MLflow 3.17 accepts, the name rule of MLflow's `validation.py`, and the
//! [`WebhookStore`] trait. URL checks need DNS and the server's settings, so the server does them.

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use wasmflow_core::paging::Page;
use wasmflow_core::{Error, Result};

use crate::columns::Columns;

/// What changed (`WebhookEntity`); the wire spells it in upper case, payloads in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookEntity {
    RegisteredModel,
    ModelVersion,
    ModelVersionTag,
    ModelVersionAlias,
    Prompt,
    PromptVersion,
    PromptTag,
    PromptVersionTag,
    PromptAlias,
    BudgetPolicy,
}

/// How it changed (`WebhookAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WebhookAction {
    Created,
    Updated,
    Deleted,
    Set,
    Exceeded,
}

impl WebhookEntity {
    pub const ALL: [Self; 10] = [
        Self::RegisteredModel,
        Self::ModelVersion,
        Self::ModelVersionTag,
        Self::ModelVersionAlias,
        Self::Prompt,
        Self::PromptVersion,
        Self::PromptTag,
        Self::PromptVersionTag,
        Self::PromptAlias,
        Self::BudgetPolicy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::RegisteredModel => "registered_model",
            Self::ModelVersion => "model_version",
            Self::ModelVersionTag => "model_version_tag",
            Self::ModelVersionAlias => "model_version_alias",
            Self::Prompt => "prompt",
            Self::PromptVersion => "prompt_version",
            Self::PromptTag => "prompt_tag",
            Self::PromptVersionTag => "prompt_version_tag",
            Self::PromptAlias => "prompt_alias",
            Self::BudgetPolicy => "budget_policy",
        }
    }

    /// The actions MLflow 3.17 allows on this entity (`VALID_ENTITY_ACTIONS`).
    pub fn actions(self) -> &'static [WebhookAction] {
        use WebhookAction::*;
        match self {
            Self::RegisteredModel | Self::ModelVersion | Self::Prompt | Self::PromptVersion => {
                &[Created]
            }
            Self::ModelVersionTag | Self::PromptTag | Self::PromptVersionTag => &[Set, Deleted],
            Self::ModelVersionAlias | Self::PromptAlias => &[Created, Deleted],
            Self::BudgetPolicy => &[Exceeded],
        }
    }

    /// The lower-case name (`registered_model`) or the proto's (`REGISTERED_MODEL`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.as_str() == s || e.as_str().to_uppercase() == s)
    }
}

impl WebhookAction {
    pub const ALL: [Self; 5] = [
        Self::Created,
        Self::Updated,
        Self::Deleted,
        Self::Set,
        Self::Exceeded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Set => "set",
            Self::Exceeded => "exceeded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s || a.as_str().to_uppercase() == s)
    }
}

/// An entity/action pair that MLflow accepts, such as `model_version_tag.set`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WebhookEvent {
    pub entity: WebhookEntity,
    pub action: WebhookAction,
}

impl WebhookEvent {
    /// MLflow's `WebhookEvent.__init__` check, with its message.
    pub fn new(entity: WebhookEntity, action: WebhookAction) -> Result<Self> {
        if !entity.actions().contains(&action) {
            let mut valid: Vec<&str> = entity.actions().iter().map(|a| a.as_str()).collect();
            valid.sort_unstable();
            let valid: Vec<String> = valid.iter().map(|a| format!("'{a}'")).collect();
            return Err(Error::invalid(format!(
                "Invalid action '{}' for entity '{}'. Valid actions are: [{}]",
                action.as_str(),
                entity.as_str(),
                valid.join(", ")
            )));
        }
        Ok(Self { entity, action })
    }

    /// `registered_model.created`, the form of MLflow's `WebhookEvent.from_str`.
    pub fn parse(text: &str) -> Result<Self> {
        let Some((entity, action)) = text.split_once('.').filter(|(_, a)| !a.contains('.')) else {
            return Err(Error::invalid(format!(
                "Invalid event string format: {text}. Expected format: 'entity.action' (e.g., \
                 'registered_model.created')"
            )));
        };
        match (WebhookEntity::parse(entity), WebhookAction::parse(action)) {
            (Some(e), Some(a)) => Self::new(e, a),
            _ => Err(Error::invalid(format!(
                "Invalid entity or action in event string: {text}."
            ))),
        }
    }

    pub fn name(self) -> String {
        format!("{}.{}", self.entity.as_str(), self.action.as_str())
    }
}

impl Serialize for WebhookEvent {
    /// The proto's JSON: enum names in upper case.
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(2))?;
        map.serialize_entry("entity", &self.entity.as_str().to_uppercase())?;
        map.serialize_entry("action", &self.action.as_str().to_uppercase())?;
        map.end()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WebhookStatus {
    #[serde(rename = "ACTIVE")]
    Active,
    #[serde(rename = "DISABLED")]
    Disabled,
}

impl WebhookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "ACTIVE",
            Self::Disabled => "DISABLED",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ACTIVE" => Ok(Self::Active),
            "DISABLED" => Ok(Self::Disabled),
            other => Err(Error::invalid(format!(
                "Invalid webhook status '{other}'. Valid statuses are: ACTIVE, DISABLED"
            ))),
        }
    }
}

/// A webhook in MLflow's wire shape (`Webhook` in webhooks.proto). The secret never leaves the
/// server: it is not serialized.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Webhook {
    pub webhook_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub status: WebhookStatus,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    /// The secret as stored (encrypted by the server).
    #[serde(skip)]
    pub secret: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub name: String,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub description: Option<String>,
    /// Already encrypted.
    pub secret: Option<String>,
    pub status: WebhookStatus,
}

/// The fields an update sets; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct WebhookUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub url: Option<String>,
    pub events: Option<Vec<WebhookEvent>>,
    /// Already encrypted.
    pub secret: Option<String>,
    pub status: Option<WebhookStatus>,
}

/// The outcome of one delivery, after its last attempt (a wasmflow record; MLflow only logs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebhookDelivery {
    pub delivery_id: String,
    pub webhook_id: String,
    pub event: String,
    pub timestamp: i64,
    pub attempts: u32,
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: i64,
}

pub const LIST_WEBHOOKS_MAX_RESULTS_DEFAULT: usize = 100;
pub const LIST_WEBHOOKS_MAX_RESULTS_THRESHOLD: usize = 1000;

pub trait WebhookStore: Send + Sync + 'static {
    fn create_webhook(&self, new: NewWebhook) -> Result<Webhook>;
    fn get_webhook(&self, webhook_id: &str) -> Result<Webhook>;
    /// Newest first, as MLflow lists them.
    fn list_webhooks(&self, max_results: usize, page_token: Option<&str>) -> Result<Page<Webhook>>;
    /// The webhooks (active or not) that subscribe to `event`.
    fn webhooks_for_event(&self, event: WebhookEvent) -> Result<Vec<Webhook>>;
    fn update_webhook(&self, webhook_id: &str, update: WebhookUpdate) -> Result<Webhook>;
    /// A soft delete, as MLflow's: the row stays with its deletion time.
    fn delete_webhook(&self, webhook_id: &str) -> Result<()>;
    fn record_webhook_delivery(&self, delivery: WebhookDelivery) -> Result<()>;
    /// A webhook's deliveries, newest first, at most `limit`.
    fn webhook_deliveries(&self, webhook_id: &str, limit: usize) -> Result<Vec<WebhookDelivery>>;
}

// ---- what both backends share: columns, rows and messages ----

pub(crate) const WEBHOOK_COLUMNS: &str = "webhook_id, name, description, url, status, secret, \
                                          creation_timestamp, last_updated_timestamp";
pub(crate) const DELIVERY_COLUMNS: &str = "delivery_id, webhook_id, entity, action, timestamp, \
                                           attempts, success, response_status, error, duration_ms";

pub(crate) fn webhook_not_found(webhook_id: &str) -> Error {
    Error::not_found(format!("Webhook with ID {webhook_id} not found."))
}

/// A webhook, without its events, from the row of [`WEBHOOK_COLUMNS`].
pub(crate) fn webhook_from<R: Columns>(r: &R) -> std::result::Result<Webhook, R::Error> {
    let created = r.int(6)?;
    Ok(Webhook {
        webhook_id: r.text(0)?,
        name: r.text(1)?,
        description: r.opt_text(2)?.filter(|d| !d.is_empty()),
        url: r.text(3)?,
        status: if r.text(4)? == "DISABLED" {
            WebhookStatus::Disabled
        } else {
            WebhookStatus::Active
        },
        secret: r.opt_text(5)?,
        creation_timestamp: created,
        last_updated_timestamp: r.opt_int(7)?.unwrap_or(created),
        events: Vec::new(),
    })
}

/// A stored (entity, action) pair. Rows are written from parsed events only; an unknown one
/// means a newer schema wrote it, and is skipped.
pub(crate) fn stored_event(entity: &str, action: &str) -> Option<WebhookEvent> {
    Some(WebhookEvent {
        entity: WebhookEntity::parse(entity)?,
        action: WebhookAction::parse(action)?,
    })
}

/// A delivery from the row of [`DELIVERY_COLUMNS`].
pub(crate) fn delivery_from<R: Columns>(r: &R) -> std::result::Result<WebhookDelivery, R::Error> {
    Ok(WebhookDelivery {
        delivery_id: r.text(0)?,
        webhook_id: r.text(1)?,
        event: format!("{}.{}", r.text(2)?, r.text(3)?),
        timestamp: r.int(4)?,
        attempts: u32::try_from(r.int(5)?).unwrap_or(u32::MAX),
        success: r.flag(6)?,
        response_status: r.opt_int(7)?.and_then(|s| u16::try_from(s).ok()),
        error: r.opt_text(8)?,
        duration_ms: r.int(9)?,
    })
}

/// Checks a new webhook (MLflow's checks) and gives it its id.
pub(crate) fn check_new_webhook(new: &NewWebhook) -> Result<String> {
    validate_webhook_name(&new.name)?;
    validate_webhook_events(&new.events)?;
    Ok(uuid::Uuid::new_v4().to_string())
}

/// Checks the fields an update sets.
pub(crate) fn check_webhook_update(update: &WebhookUpdate) -> Result<()> {
    if let Some(name) = &update.name {
        validate_webhook_name(name)?;
    }
    if let Some(events) = &update.events {
        validate_webhook_events(events)?;
    }
    Ok(())
}

/// The (entity, action) columns a delivery's event is stored in.
pub(crate) fn delivery_event(delivery: &WebhookDelivery) -> (&str, &str) {
    delivery
        .event
        .split_once('.')
        .unwrap_or((&delivery.event, ""))
}

/// `_validate_webhook_name`: 1 to 63 letters, digits, `.`, `_` and `-`, starting and ending
/// with a letter or digit.
pub fn validate_webhook_name(name: &str) -> Result<()> {
    let ok_end = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let valid = !name.is_empty()
        && name.chars().count() <= 63
        && ok_end(name.chars().next())
        && ok_end(name.chars().last())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "Webhook name {} is invalid. It must start and end with a letter or digit, be less than \
         63 characters long, and contain only letters, digits, dots (.), underscores (_), and \
         hyphens (-).",
        py_repr(name)
    )))
}

/// `_validate_webhook_events`: at least one.
pub fn validate_webhook_events(events: &[WebhookEvent]) -> Result<()> {
    if events.is_empty() {
        return Err(Error::invalid(
            "Webhook events must be a non-empty list of WebhookEvent objects: [].",
        ));
    }
    Ok(())
}

/// A string as Python's `repr` shows it, which MLflow's messages quote values with.
pub use wasmflow_core::pyjson::repr_str as py_repr;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_pair_entities_with_their_actions() {
        let e = WebhookEvent::parse("model_version_tag.set").unwrap();
        assert_eq!(e.name(), "model_version_tag.set");
        assert_eq!(
            WebhookEvent::parse("registered_model.deleted")
                .unwrap_err()
                .message,
            "Invalid action 'deleted' for entity 'registered_model'. Valid actions are: \
             ['created']"
        );
        assert!(WebhookEvent::parse("nope.created").is_err());
        assert!(WebhookEvent::parse("registered_model").is_err());
        assert_eq!(
            WebhookEntity::parse("MODEL_VERSION_ALIAS"),
            Some(WebhookEntity::ModelVersionAlias)
        );
        assert_eq!(WebhookEntity::parse("Model_Version"), None);
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"entity":"MODEL_VERSION_TAG","action":"SET"}"#
        );
    }

    #[test]
    fn names() {
        for ok in ["a", "My-hook_1.v2", &"a".repeat(63)] {
            validate_webhook_name(ok).unwrap();
        }
        for bad in ["", "-a", "a-", "a b", &"a".repeat(64), "é"] {
            assert!(validate_webhook_name(bad).is_err(), "{bad}");
        }
        assert!(
            validate_webhook_name("a b")
                .unwrap_err()
                .message
                .starts_with("Webhook name 'a b' is invalid.")
        );
    }

    #[test]
    fn python_repr() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("a\nb"), "'a\\nb'");
    }
}
