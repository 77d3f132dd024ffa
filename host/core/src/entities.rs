//! MLflow's tracking entities, serialized with the field names of MLflow's protos
//! (`service.proto`) as MLflow's server writes them: int64 as JSON numbers, `NaN` as a string.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Error, Result};

/// The stage of an experiment, run or logged model: MLflow soft-deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LifecycleStage {
    Active,
    Deleted,
}

impl LifecycleStage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "active" => Ok(Self::Active),
            "deleted" => Ok(Self::Deleted),
            other => Err(Error::internal(format!(
                "unknown lifecycle stage '{other}'"
            ))),
        }
    }
}

/// Which lifecycle stages a search returns (`ViewType` in the protos).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ViewType {
    #[default]
    ActiveOnly,
    DeletedOnly,
    All,
}

impl ViewType {
    /// The lifecycle stages this view admits.
    pub fn stages(self) -> &'static [&'static str] {
        match self {
            Self::ActiveOnly => &["active"],
            Self::DeletedOnly => &["deleted"],
            Self::All => &["active", "deleted"],
        }
    }

    /// Parses the view type as clients send it: the enum name or its proto number.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "ACTIVE_ONLY" | "1" => Ok(Self::ActiveOnly),
            "DELETED_ONLY" | "2" => Ok(Self::DeletedOnly),
            "ALL" | "3" => Ok(Self::All),
            other => Err(Error::invalid(format!("invalid view type '{other}'"))),
        }
    }
}

/// A key/value tag on an experiment, run or logged model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

/// A run parameter. Same shape as a tag; a separate type keeps the two from being confused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Experiment {
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: LifecycleStage,
    pub last_update_time: i64,
    pub creation_time: i64,
    /// MLflow writes its answers from protos, which leave an empty list out.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<Tag>,
    pub workspace: Workspace,
}

/// An experiment's workspace. MLflow 3.17 names one in every experiment it answers with,
/// `default` while workspaces are off; wasmflow has no workspaces, so it is always that.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Workspace;

impl Serialize for Workspace {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("default")
    }
}

/// One point of a metric. MLflow's SQL store keeps NaN as NaN and clamps ±inf to ±f64::MAX,
/// which is what clients read back; [`Metric::stored_value`] applies that rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub key: String,
    #[serde(serialize_with = "ser_f64", deserialize_with = "de_f64")]
    pub value: f64,
    #[serde(default, deserialize_with = "de_i64")]
    pub timestamp: i64,
    #[serde(default, deserialize_with = "de_i64")]
    pub step: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataset_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
}

impl Metric {
    pub fn stored_value(value: f64) -> f64 {
        if value.is_infinite() {
            value.signum() * f64::MAX
        } else {
            value
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RunStatus {
    Running,
    Scheduled,
    Finished,
    Failed,
    Killed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "RUNNING",
            Self::Scheduled => "SCHEDULED",
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }

    /// Parses a status by name or by its proto number.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "RUNNING" | "1" => Ok(Self::Running),
            "SCHEDULED" | "2" => Ok(Self::Scheduled),
            "FINISHED" | "3" => Ok(Self::Finished),
            "FAILED" | "4" => Ok(Self::Failed),
            "KILLED" | "5" => Ok(Self::Killed),
            other => Err(Error::invalid(format!("invalid run status '{other}'"))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunInfo {
    pub run_id: String,
    /// Deprecated alias of `run_id` that MLflow still sends.
    pub run_uuid: String,
    pub run_name: String,
    pub experiment_id: String,
    pub user_id: String,
    pub status: RunStatus,
    pub start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: LifecycleStage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct RunData {
    pub metrics: Vec<Metric>,
    pub params: Vec<Param>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInput {
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub dataset: Dataset,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInput {
    pub model_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOutput {
    pub model_id: String,
    #[serde(default, deserialize_with = "de_i64")]
    pub step: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct RunInputs {
    pub dataset_inputs: Vec<DatasetInput>,
    pub model_inputs: Vec<ModelInput>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct RunOutputs {
    pub model_outputs: Vec<ModelOutput>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    pub info: RunInfo,
    pub data: RunData,
    pub inputs: RunInputs,
    pub outputs: RunOutputs,
}

/// `LoggedModelStatus` in the protos.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoggedModelStatus {
    #[serde(rename = "LOGGED_MODEL_STATUS_UNSPECIFIED")]
    Unspecified,
    #[serde(rename = "LOGGED_MODEL_PENDING")]
    Pending,
    #[serde(rename = "LOGGED_MODEL_READY")]
    Ready,
    #[serde(rename = "LOGGED_MODEL_UPLOAD_FAILED")]
    UploadFailed,
}

impl LoggedModelStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "LOGGED_MODEL_STATUS_UNSPECIFIED",
            Self::Pending => "LOGGED_MODEL_PENDING",
            Self::Ready => "LOGGED_MODEL_READY",
            Self::UploadFailed => "LOGGED_MODEL_UPLOAD_FAILED",
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "LOGGED_MODEL_STATUS_UNSPECIFIED" | "0" => Ok(Self::Unspecified),
            "LOGGED_MODEL_PENDING" | "1" => Ok(Self::Pending),
            "LOGGED_MODEL_READY" | "2" => Ok(Self::Ready),
            "LOGGED_MODEL_UPLOAD_FAILED" | "3" => Ok(Self::UploadFailed),
            other => Err(Error::invalid(format!(
                "invalid logged model status '{other}'"
            ))),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedModelInfo {
    pub model_id: String,
    pub experiment_id: String,
    pub name: String,
    pub creation_timestamp_ms: i64,
    pub last_updated_timestamp_ms: i64,
    pub artifact_uri: String,
    pub status: LoggedModelStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creator_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    pub tags: Vec<Tag>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct LoggedModelData {
    pub params: Vec<Param>,
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoggedModel {
    pub info: LoggedModelInfo,
    pub data: LoggedModelData,
}

fn ser_f64<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
    // JSON has no NaN; protobuf's JSON mapping spells it as a string, and so does MLflow.
    if value.is_nan() {
        s.serialize_str("NaN")
    } else if value.is_infinite() {
        s.serialize_str(if *value > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        })
    } else {
        s.serialize_f64(*value)
    }
}

/// Deserializes a double as protobuf's JSON mapping allows: a number, or a string holding a
/// number, `NaN`, `Infinity` or `-Infinity`.
pub fn de_f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Str(String),
    }
    match Repr::deserialize(d)? {
        Repr::Num(n) => Ok(n),
        Repr::Str(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" | "inf" => Ok(f64::INFINITY),
            "-Infinity" | "-inf" => Ok(f64::NEG_INFINITY),
            other => other
                .parse()
                .map_err(|_| serde::de::Error::custom(format!("'{other}' is not a double"))),
        },
    }
}

/// Deserializes an int64 as protobuf's JSON mapping allows: a number or a decimal string.
pub fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Int(i64),
        Float(f64),
        Str(String),
    }
    match Repr::deserialize(d)? {
        Repr::Int(n) => Ok(n),
        Repr::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i64),
        Repr::Float(f) => Err(serde::de::Error::custom(format!("'{f}' is not an int64"))),
        Repr::Str(s) => s
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("'{s}' is not an int64"))),
    }
}

/// [`de_i64`] for optional fields; `null` is absent.
pub fn de_opt_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap(#[serde(deserialize_with = "de_i64")] i64);
    Ok(Option::<Wrap>::deserialize(d)?.map(|w| w.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_nan_round_trips_as_string() {
        let m: Metric =
            serde_json::from_str(r#"{"key":"a","value":"NaN","timestamp":"5","step":1}"#).unwrap();
        assert!(m.value.is_nan());
        assert_eq!(m.timestamp, 5);
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["value"], "NaN");
    }

    #[test]
    fn infinity_is_stored_as_max() {
        assert_eq!(Metric::stored_value(f64::INFINITY), f64::MAX);
        assert_eq!(Metric::stored_value(f64::NEG_INFINITY), -f64::MAX);
        assert!(Metric::stored_value(f64::NAN).is_nan());
    }

    #[test]
    fn bad_int64_is_rejected() {
        let err = serde_json::from_str::<ModelOutput>(r#"{"model_id":"m","step":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("'x' is not an int64"), "{err}");
    }
}
