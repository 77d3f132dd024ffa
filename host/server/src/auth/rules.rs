//! The one table that says what every endpoint requires of a user who is not an admin, and what
//! follows a successful answer: MLflow's `BEFORE_REQUEST_VALIDATORS` and
//! `AFTER_REQUEST_HANDLERS` (`mlflow/server/auth/__init__.py`), for wasmflow's routes.
//!
//! Paths are written under `/api/`; the UI's `/ajax-api/` twins follow the same rules. A `*`
//! segment matches one path segment, a trailing `**` the rest of the path. A route the table
//! does not name is refused to non-admins (fail-closed), so an endpoint added without a rule
//! cannot leak.

use axum::http::Method;

use super::permission::Access;

/// What a request needs, and where the resource it acts on is named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No login (health checks, server info, the UI's static files).
    Public,
    /// Any signed-in user.
    Authenticated,
    Admin,
    /// The user named by `username` is the sender (users reading or changing themselves).
    SelfOrAdmin,
    /// The experiment of `experiment_id`.
    Experiment(Access),
    /// The experiment of `experiment_name`.
    ExperimentByName(Access),
    /// The experiment of the run `run_id` (or `run_uuid`), and of every logged model the
    /// request logs to (`model_id`, `metrics[].model_id`, `models[].model_id`).
    Run(Access),
    /// The experiments of every run in `run_ids` (or the repeated `run_id` of get-history-bulk).
    Runs(Access),
    /// Every experiment in `experiment_ids`.
    Experiments(Access),
    /// The experiment of the logged model named by the path segment after `logged-models`.
    LoggedModel(Access),
    /// The registered model `name`.
    RegisteredModel(Access),
    /// A new model version: update on the model `name`, read on its `run_id` and `model_id`.
    CreateModelVersion,
    /// The registered model named by `uri` (`models:/NAME/...`).
    ModelUri,
    /// The registered model named by the path segment after `/serving/models/`.
    ServedModel,
    /// The experiment that a proxied artifact path (`<experiment_id>/...`) belongs to.
    ArtifactProxy(Access),
    /// Manage on the `resource_type`/`resource_id` that the grant or revocation is about.
    ManageResource,
    /// Searching runs: the request's `experiment_ids` are cut to the readable ones.
    SearchRuns,
    /// Every experiment in `experiment_ids`, which must name at least one (MLflow's dataset
    /// create and search: an unscoped request could reach every dataset).
    ScopedExperiments(Access),
    /// Every experiment the evaluation dataset named by the path segment after `datasets`
    /// belongs to (a dataset in no experiment is its admins' only).
    EvalDataset(Access),
    /// Update on the dataset and on every experiment of `experiment_ids` it joins.
    AddEvalDatasetToExperiments,
    /// The experiment of the trace named by the path segment after `traces` (or by
    /// `trace_id` / `request_id`).
    Trace(Access),
    /// The experiments of every trace in `trace_ids`.
    Traces(Access),
    /// Update on the run `run_id` and read on every trace in `trace_ids`.
    LinkTraces,
    /// A new trace: update on the experiment of `trace.trace_info.trace_location`.
    StartTrace,
    /// Searching traces: read on every experiment of `locations`.
    TraceLocations,
}

/// What follows a successful answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Nothing,
    /// The creator gets MANAGE on the new experiment (`experiment_id` of the answer).
    GrantExperimentCreator,
    /// The creator gets MANAGE on the new registered model.
    GrantModelCreator,
    /// Grants on `name` move to `new_name`.
    RenameModelGrants,
    /// Grants on the deleted `name` are dropped.
    DeleteModelGrants,
    /// Unreadable entries are taken out of the answer's list.
    Filter(Filtered),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filtered {
    /// `experiments[].experiment_id`
    Experiments,
    /// `models[].info.experiment_id`
    LoggedModels,
    /// `registered_models[].name`
    RegisteredModels,
    /// `model_versions[].name`
    ModelVersions,
    /// the keys of `run_counts`
    RunCounts,
}

pub struct Rule {
    pub method: Method,
    pub path: &'static str,
    pub need: Need,
    pub after: After,
}

const fn rule(method: Method, path: &'static str, need: Need, after: After) -> Rule {
    Rule {
        method,
        path,
        need,
        after,
    }
}

use Access::{Delete, Manage, Read, Update};
use After::Nothing;
use Need::*;

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PATCH: Method = Method::PATCH;
const PUT: Method = Method::PUT;
const DELETE: Method = Method::DELETE;

#[rustfmt::skip]
pub static RULES: &[Rule] = &[
    // -- experiments
    rule(POST, "/api/2.0/mlflow/experiments/create", Authenticated, After::GrantExperimentCreator),
    rule(GET, "/api/2.0/mlflow/experiments/get", Experiment(Read), Nothing),
    rule(GET, "/api/2.0/mlflow/experiments/get-by-name", ExperimentByName(Read), Nothing),
    rule(GET, "/api/2.0/mlflow/experiments/search", Authenticated, After::Filter(Filtered::Experiments)),
    rule(POST, "/api/2.0/mlflow/experiments/search", Authenticated, After::Filter(Filtered::Experiments)),
    rule(POST, "/api/2.0/mlflow/experiments/update", Experiment(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/experiments/delete", Experiment(Delete), Nothing),
    rule(POST, "/api/2.0/mlflow/experiments/restore", Experiment(Delete), Nothing),
    rule(POST, "/api/2.0/mlflow/experiments/set-experiment-tag", Experiment(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/experiments/delete-experiment-tag", Experiment(Update), Nothing),
    // -- runs
    rule(POST, "/api/2.0/mlflow/runs/create", Experiment(Update), Nothing),
    rule(GET, "/api/2.0/mlflow/runs/get", Run(Read), Nothing),
    rule(POST, "/api/2.0/mlflow/runs/update", Run(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/runs/delete", Run(Delete), Nothing),
    rule(POST, "/api/2.0/mlflow/runs/restore", Run(Delete), Nothing),
    rule(POST, "/api/2.0/mlflow/runs/log-metric", Run(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/runs/log-parameter", Run(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/runs/log-batch", Run(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/runs/log-inputs", Run(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/runs/outputs", Run(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/runs/set-tag", Run(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/runs/delete-tag", Run(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/runs/search", SearchRuns, Nothing),
    rule(GET, "/api/2.0/mlflow/runs/search", SearchRuns, Nothing),
    rule(GET, "/api/2.0/mlflow/metrics/get-history", Run(Read), Nothing),
    rule(GET, "/api/2.0/mlflow/metrics/get-history-bulk-interval", Runs(Read), Nothing),
    rule(GET, "/api/2.0/mlflow/artifacts/list", Run(Read), Nothing),
    rule(GET, "/get-artifact", Run(Read), Nothing),
    rule(POST, "/api/2.0/mlflow/upload-artifact", Run(Update), Nothing),
    // -- what MLflow's UI calls besides the REST API (/graphql has no rule: admins only)
    rule(GET, "/api/2.0/mlflow/metrics/get-history-bulk", Runs(Read), Nothing),
    rule(POST, "/api/2.0/mlflow/experiments/search-datasets", Experiments(Read), Nothing),
    rule(POST, "/api/2.0/mlflow/runs/create-promptlab-run", Experiment(Update), Nothing),
    // MLflow's answers of a server with no gateway, assistant or telemetry: nothing to protect
    rule(GET, "/api/2.0/mlflow/gateway-proxy", Authenticated, Nothing),
    rule(POST, "/api/2.0/mlflow/gateway-proxy", Authenticated, Nothing),
    rule(GET, "/api/3.0/mlflow/assistant/config", Authenticated, Nothing),
    rule(GET, "/api/3.0/mlflow/assistant/providers", Authenticated, Nothing),
    rule(GET, "/api/3.0/mlflow/ui-telemetry", Authenticated, Nothing),
    rule(POST, "/api/3.0/mlflow/ui-telemetry", Authenticated, Nothing),
    // -- logged models
    rule(POST, "/api/2.0/mlflow/logged-models", Experiment(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/logged-models/search", Authenticated, After::Filter(Filtered::LoggedModels)),
    rule(GET, "/api/2.0/mlflow/logged-models/*", LoggedModel(Read), Nothing),
    rule(PATCH, "/api/2.0/mlflow/logged-models/*", LoggedModel(Update), Nothing),
    rule(DELETE, "/api/2.0/mlflow/logged-models/*", LoggedModel(Delete), Nothing),
    rule(PATCH, "/api/2.0/mlflow/logged-models/*/tags", LoggedModel(Update), Nothing),
    rule(DELETE, "/api/2.0/mlflow/logged-models/*/tags/*", LoggedModel(Delete), Nothing),
    rule(POST, "/api/2.0/mlflow/logged-models/*/params", LoggedModel(Update), Nothing),
    rule(GET, "/api/2.0/mlflow/logged-models/*/artifacts/directories", LoggedModel(Read), Nothing),
    rule(GET, "/api/2.0/mlflow/logged-models/*/artifacts/files", LoggedModel(Read), Nothing),
    // -- traces (MLflow 3): by the experiment the trace belongs to
    rule(POST, "/api/3.0/mlflow/traces", StartTrace, Nothing),
    rule(GET, "/api/3.0/mlflow/traces/get", Trace(Read), Nothing),
    rule(GET, "/api/3.0/mlflow/traces/batchGet", Traces(Read), Nothing),
    rule(POST, "/api/3.0/mlflow/traces/batchGetInfos", Traces(Read), Nothing),
    rule(POST, "/api/3.0/mlflow/traces/search", TraceLocations, Nothing),
    rule(POST, "/api/3.0/mlflow/traces/delete-traces", Experiment(Delete), Nothing),
    rule(POST, "/api/2.0/mlflow/traces/delete-traces", Experiment(Delete), Nothing),
    rule(POST, "/api/2.0/mlflow/traces/link-to-run", LinkTraces, Nothing),
    // Analytics over whole experiments: read on each (MLflow's validate_can_query_trace_metrics
    // and validate_can_read_traces_by_experiment_ids).
    rule(POST, "/api/3.0/mlflow/traces/metrics", ScopedExperiments(Read), Nothing),
    rule(POST, "/api/3.0/mlflow/traces/calculate-filter-correlation", ScopedExperiments(Read), Nothing),
    rule(GET, "/api/2.0/mlflow/traces", Experiments(Read), Nothing),
    // v2 `StartTrace` names its experiment at the top (MLflow: update on the experiment);
    // `EndTrace` and `LinkPromptsToTrace` change their trace (update on its experiment).
    rule(POST, "/api/2.0/mlflow/traces", Experiment(Update), Nothing),
    rule(PATCH, "/api/2.0/mlflow/traces/*", Trace(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/traces/link-prompts", Trace(Update), Nothing),
    rule(GET, "/api/3.0/mlflow/traces/*", Trace(Read), Nothing),
    rule(GET, "/api/2.0/mlflow/traces/*/info", Trace(Read), Nothing),
    rule(PATCH, "/api/3.0/mlflow/traces/*/tags", Trace(Update), Nothing),
    rule(DELETE, "/api/3.0/mlflow/traces/*/tags", Trace(Update), Nothing),
    rule(PATCH, "/api/2.0/mlflow/traces/*/tags", Trace(Update), Nothing),
    rule(DELETE, "/api/2.0/mlflow/traces/*/tags", Trace(Update), Nothing),
    rule(POST, "/api/3.0/mlflow/traces/*/assessments", Trace(Update), Nothing),
    rule(GET, "/api/3.0/mlflow/traces/*/assessments/*", Trace(Read), Nothing),
    rule(PATCH, "/api/3.0/mlflow/traces/*/assessments/*", Trace(Update), Nothing),
    rule(DELETE, "/api/3.0/mlflow/traces/*/assessments/*", Trace(Delete), Nothing),
    rule(GET, "/api/2.0/mlflow/get-trace-artifact", Trace(Read), Nothing),
    rule(GET, "/api/3.0/mlflow/get-trace-artifact", Trace(Read), Nothing),
    // OTLP: the experiment of the `x-mlflow-experiment-id` header (read into `experiment_id`)
    rule(POST, "/v1/traces", Experiment(Update), Nothing),
    // -- registered models
    rule(POST, "/api/2.0/mlflow/registered-models/create", Authenticated, After::GrantModelCreator),
    rule(POST, "/api/2.0/mlflow/registered-models/rename", RegisteredModel(Update), After::RenameModelGrants),
    rule(PATCH, "/api/2.0/mlflow/registered-models/update", RegisteredModel(Update), Nothing),
    rule(DELETE, "/api/2.0/mlflow/registered-models/delete", RegisteredModel(Delete), After::DeleteModelGrants),
    rule(GET, "/api/2.0/mlflow/registered-models/get", RegisteredModel(Read), Nothing),
    rule(GET, "/api/2.0/mlflow/registered-models/search", Authenticated, After::Filter(Filtered::RegisteredModels)),
    rule(GET, "/api/2.0/mlflow/registered-models/get-latest-versions", RegisteredModel(Read), Nothing),
    rule(POST, "/api/2.0/mlflow/registered-models/get-latest-versions", RegisteredModel(Read), Nothing),
    rule(POST, "/api/2.0/mlflow/registered-models/set-tag", RegisteredModel(Update), Nothing),
    rule(DELETE, "/api/2.0/mlflow/registered-models/delete-tag", RegisteredModel(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/registered-models/alias", RegisteredModel(Update), Nothing),
    rule(GET, "/api/2.0/mlflow/registered-models/alias", RegisteredModel(Read), Nothing),
    rule(DELETE, "/api/2.0/mlflow/registered-models/alias", RegisteredModel(Delete), Nothing),
    // -- model versions
    rule(POST, "/api/2.0/mlflow/model-versions/create", CreateModelVersion, Nothing),
    rule(PATCH, "/api/2.0/mlflow/model-versions/update", RegisteredModel(Update), Nothing),
    rule(POST, "/api/2.0/mlflow/model-versions/transition-stage", RegisteredModel(Update), Nothing),
    rule(DELETE, "/api/2.0/mlflow/model-versions/delete", RegisteredModel(Delete), Nothing),
    rule(GET, "/api/2.0/mlflow/model-versions/get", RegisteredModel(Read), Nothing),
    rule(GET, "/api/2.0/mlflow/model-versions/search", Authenticated, After::Filter(Filtered::ModelVersions)),
    rule(GET, "/api/2.0/mlflow/model-versions/get-download-uri", RegisteredModel(Read), Nothing),
    rule(GET, "/model-versions/get-artifact", RegisteredModel(Read), Nothing),
    rule(POST, "/api/2.0/mlflow/model-versions/set-tag", RegisteredModel(Update), Nothing),
    rule(DELETE, "/api/2.0/mlflow/model-versions/delete-tag", RegisteredModel(Delete), Nothing),
    // -- the artifact proxy: by the experiment its path starts with; deleting a subtree manages
    rule(GET, "/api/2.0/mlflow-artifacts/artifacts", ArtifactProxy(Read), Nothing),
    rule(GET, "/api/2.0/mlflow-artifacts/artifacts/**", ArtifactProxy(Read), Nothing),
    rule(PUT, "/api/2.0/mlflow-artifacts/artifacts/**", ArtifactProxy(Update), Nothing),
    rule(DELETE, "/api/2.0/mlflow-artifacts/artifacts/**", ArtifactProxy(Manage), Nothing),
    // -- webhooks are admin-only in MLflow
    rule(GET, "/api/2.0/mlflow/webhooks", Admin, Nothing),
    rule(POST, "/api/2.0/mlflow/webhooks", Admin, Nothing),
    rule(GET, "/api/2.0/mlflow/webhooks/**", Admin, Nothing),
    rule(POST, "/api/2.0/mlflow/webhooks/**", Admin, Nothing),
    rule(PATCH, "/api/2.0/mlflow/webhooks/**", Admin, Nothing),
    rule(DELETE, "/api/2.0/mlflow/webhooks/**", Admin, Nothing),
    // -- GenAI evaluation datasets: scoped by the experiments they belong to, as in MLflow
    rule(POST, "/api/3.0/mlflow/datasets/create", ScopedExperiments(Update), Nothing),
    rule(POST, "/api/3.0/mlflow/datasets/search", ScopedExperiments(Read), Nothing),
    rule(GET, "/api/3.0/mlflow/datasets/search", ScopedExperiments(Read), Nothing),
    rule(GET, "/api/3.0/mlflow/datasets/*", EvalDataset(Read), Nothing),
    rule(DELETE, "/api/3.0/mlflow/datasets/*", EvalDataset(Delete), Nothing),
    rule(PATCH, "/api/3.0/mlflow/datasets/*/tags", EvalDataset(Update), Nothing),
    rule(DELETE, "/api/3.0/mlflow/datasets/*/tags/*", EvalDataset(Update), Nothing),
    rule(GET, "/api/3.0/mlflow/datasets/*/records", EvalDataset(Read), Nothing),
    rule(POST, "/api/3.0/mlflow/datasets/*/records", EvalDataset(Update), Nothing),
    rule(DELETE, "/api/3.0/mlflow/datasets/*/records", EvalDataset(Update), Nothing),
    rule(GET, "/api/3.0/mlflow/datasets/*/experiment-ids", EvalDataset(Read), Nothing),
    rule(POST, "/api/3.0/mlflow/datasets/*/add-experiments", AddEvalDatasetToExperiments, Nothing),
    rule(POST, "/api/3.0/mlflow/datasets/*/remove-experiments", EvalDataset(Update), Nothing),
    // -- the auth API
    rule(POST, "/api/2.0/mlflow/users/create", Admin, Nothing),
    rule(GET, "/api/2.0/mlflow/users/get", SelfOrAdmin, Nothing),
    rule(GET, "/api/2.0/mlflow/users/current", Authenticated, Nothing),
    rule(GET, "/api/2.0/mlflow/users/list", Authenticated, Nothing),
    rule(PATCH, "/api/2.0/mlflow/users/update-password", SelfOrAdmin, Nothing),
    rule(PATCH, "/api/2.0/mlflow/users/update-admin", Admin, Nothing),
    rule(DELETE, "/api/2.0/mlflow/users/delete", Admin, Nothing),
    rule(POST, "/api/3.0/mlflow/users/permissions/grant", ManageResource, Nothing),
    rule(POST, "/api/3.0/mlflow/users/permissions/revoke", ManageResource, Nothing),
    rule(GET, "/api/3.0/mlflow/users/permissions/get", SelfOrAdmin, Nothing),
    // -- wasmflow's own endpoints
    rule(GET, "/api/2.0/wasmflow/webhooks/*/deliveries", Admin, Nothing),
    rule(GET, "/api/2.0/wasmflow/version", Authenticated, Nothing),
    rule(GET, "/api/2.0/wasmflow/registry/events", RegisteredModel(Read), Nothing),
    rule(GET, "/api/2.0/wasmflow/models/resolve", ModelUri, Nothing),
    rule(GET, "/api/2.0/wasmflow/experiments/run-counts", Authenticated, After::Filter(Filtered::RunCounts)),
    rule(GET, "/api/2.0/wasmflow/plugins", Authenticated, Nothing),
    rule(POST, "/api/2.0/wasmflow/plugins", Admin, Nothing),
    rule(DELETE, "/api/2.0/wasmflow/plugins", Admin, Nothing),
    rule(GET, "/api/2.0/wasmflow/plugins/*", Authenticated, Nothing),
    rule(POST, "/serving/models/*/*/invocations", ServedModel, Nothing),
    rule(POST, "/serving/models/*/invocations", ServedModel, Nothing),
    rule(GET, "/metrics", Authenticated, Nothing),
    // -- the server and the UI
    rule(GET, "/api/3.0/mlflow/server-info", Public, Nothing),
    rule(GET, "/health", Public, Nothing),
    rule(GET, "/version", Authenticated, Nothing),
    rule(GET, "/", Authenticated, Nothing),
    rule(GET, "/ui/**", Public, Nothing),
];

/// The rule for a request, if the table has one.
pub fn find(method: &Method, path: &str) -> Option<&'static Rule> {
    let path = canonical(path);
    RULES
        .iter()
        .find(|r| r.method == *method && matches(r.path, &path))
}

/// `/ajax-api/...` as its `/api/...` twin; a trailing slash dropped.
fn canonical(path: &str) -> String {
    let path = match path.strip_prefix("/ajax-api/") {
        Some(rest) => format!("/api/{rest}"),
        None => path.to_string(),
    };
    match path.strip_suffix('/') {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => path,
    }
}

fn matches(pattern: &str, path: &str) -> bool {
    let mut pat = pattern.split('/');
    let mut got = path.split('/');
    loop {
        match (pat.next(), got.next()) {
            (Some("**"), Some(_)) => return true,
            (Some("*"), Some(seg)) if !seg.is_empty() => {}
            (Some(p), Some(seg)) if p == seg => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// The trace a path names (the segment after `traces`), for [`Need::Trace`]; `None` when that
/// segment is an endpoint's own word (`/traces/get`, `/traces/link-prompts`): the trace is then
/// named in the request's parameters.
pub fn trace_in_path(path: &str) -> Option<String> {
    segment_after(path, "traces").filter(|s| {
        !matches!(
            s.as_str(),
            "get" | "batchGet" | "batchGetInfos" | "link-prompts"
        )
    })
}

/// The percent-decoded path segment that follows `marker` (`logged-models` → the model id).
pub fn segment_after(path: &str, marker: &str) -> Option<String> {
    let mut segments = path.split('/');
    segments.find(|s| *s == marker)?;
    let seg = segments.next().filter(|s| !s.is_empty())?;
    Some(
        percent_encoding::percent_decode_str(seg)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(method: Method, path: &str) -> Option<Need> {
        find(&method, path).map(|r| r.need)
    }

    #[test]
    fn paths_match_by_segment() {
        assert!(matches(
            "/api/2.0/mlflow/logged-models/*",
            "/api/2.0/mlflow/logged-models/m-1"
        ));
        assert!(!matches(
            "/api/2.0/mlflow/logged-models/*",
            "/api/2.0/mlflow/logged-models/"
        ));
        assert!(!matches(
            "/api/2.0/mlflow/logged-models/*",
            "/api/2.0/mlflow/logged-models/a/b"
        ));
        assert!(matches("/ui/**", "/ui/vendor/x.js"));
        assert!(!matches("/ui/**", "/ui"));
        assert!(!matches(
            "/api/2.0/mlflow/runs/get",
            "/api/2.0/mlflow/runs/getx"
        ));
    }

    #[test]
    fn every_kind_of_endpoint_has_its_rule() {
        for analytics in ["metrics", "calculate-filter-correlation"] {
            assert_eq!(
                need(POST, &format!("/ajax-api/3.0/mlflow/traces/{analytics}")),
                Some(ScopedExperiments(Read))
            );
        }
        assert_eq!(
            need(GET, "/api/2.0/mlflow/experiments/get"),
            Some(Experiment(Read))
        );
        assert_eq!(
            need(GET, "/ajax-api/2.0/mlflow/experiments/get"),
            Some(Experiment(Read))
        );
        assert_eq!(
            need(POST, "/api/2.0/mlflow/experiments/delete"),
            Some(Experiment(Delete))
        );
        assert_eq!(
            need(POST, "/api/2.0/mlflow/runs/log-batch"),
            Some(Run(Update))
        );
        assert_eq!(need(POST, "/api/2.0/mlflow/runs/delete"), Some(Run(Delete)));
        assert_eq!(
            need(GET, "/api/2.0/mlflow/logged-models/m-abc"),
            Some(LoggedModel(Read))
        );
        assert_eq!(
            need(DELETE, "/api/2.0/mlflow/logged-models/m-abc/tags/k"),
            Some(LoggedModel(Delete))
        );
        assert_eq!(
            need(POST, "/api/2.0/mlflow/logged-models/search"),
            Some(Authenticated),
            "the literal path wins over the model-id pattern"
        );
        assert_eq!(
            need(
                PUT,
                "/api/2.0/mlflow-artifacts/artifacts/1/abc/artifacts/model.pkl"
            ),
            Some(ArtifactProxy(Update))
        );
        assert_eq!(
            need(DELETE, "/ajax-api/2.0/mlflow-artifacts/artifacts/1/x"),
            Some(ArtifactProxy(Manage))
        );
        assert_eq!(
            need(POST, "/serving/models/my%20model/1/invocations"),
            Some(ServedModel)
        );
        assert_eq!(
            need(POST, "/serving/models/my%20model@champion/invocations"),
            Some(ServedModel)
        );
        assert_eq!(need(POST, "/api/2.0/wasmflow/plugins"), Some(Admin));
        assert_eq!(need(DELETE, "/api/2.0/wasmflow/plugins"), Some(Admin));
        assert_eq!(need(GET, "/api/2.0/wasmflow/plugins"), Some(Authenticated));
        assert_eq!(need(POST, "/api/2.0/mlflow/users/create"), Some(Admin));
        assert_eq!(need(GET, "/api/2.0/mlflow/users/get"), Some(SelfOrAdmin));
        assert_eq!(need(GET, "/health"), Some(Public));
        assert_eq!(need(GET, "/ui/app.js"), Some(Public));
        assert_eq!(need(GET, "/"), Some(Authenticated));
        assert_eq!(need(POST, "/api/2.0/mlflow/webhooks/abc/test"), Some(Admin));
        assert_eq!(need(GET, "/get-artifact"), Some(Run(Read)));
        assert_eq!(
            need(POST, "/ajax-api/2.0/mlflow/upload-artifact"),
            Some(Run(Update))
        );
        assert_eq!(
            need(GET, "/ajax-api/2.0/mlflow/metrics/get-history-bulk"),
            Some(Runs(Read))
        );
        assert_eq!(
            need(POST, "/ajax-api/2.0/mlflow/experiments/search-datasets"),
            Some(Experiments(Read))
        );
        assert_eq!(
            need(GET, "/api/2.0/mlflow/logged-models/m-1/artifacts/files"),
            Some(LoggedModel(Read))
        );
        assert_eq!(need(POST, "/graphql"), None, "admins only");
    }

    #[test]
    fn evaluation_datasets_go_by_their_experiments() {
        assert_eq!(
            need(POST, "/api/3.0/mlflow/datasets/create"),
            Some(ScopedExperiments(Update))
        );
        assert_eq!(
            need(POST, "/ajax-api/3.0/mlflow/datasets/search"),
            Some(ScopedExperiments(Read))
        );
        assert_eq!(
            need(GET, "/api/3.0/mlflow/datasets/d-1"),
            Some(EvalDataset(Read))
        );
        assert_eq!(
            need(DELETE, "/api/3.0/mlflow/datasets/d-1"),
            Some(EvalDataset(Delete))
        );
        assert_eq!(
            need(DELETE, "/api/3.0/mlflow/datasets/d-1/records"),
            Some(EvalDataset(Update))
        );
        assert_eq!(
            need(DELETE, "/api/3.0/mlflow/datasets/d-1/tags/k"),
            Some(EvalDataset(Update))
        );
        assert_eq!(
            need(POST, "/api/3.0/mlflow/datasets/d-1/add-experiments"),
            Some(AddEvalDatasetToExperiments)
        );
        assert_eq!(need(PUT, "/api/3.0/mlflow/datasets/d-1"), None);
    }

    #[test]
    fn v2_trace_writes_go_by_the_trace_or_its_experiment() {
        assert_eq!(
            need(POST, "/api/2.0/mlflow/traces"),
            Some(Experiment(Update))
        );
        assert_eq!(
            need(PATCH, "/ajax-api/2.0/mlflow/traces/tr-1"),
            Some(Trace(Update))
        );
        assert_eq!(
            need(POST, "/api/2.0/mlflow/traces/link-prompts"),
            Some(Trace(Update))
        );
        // The trace of link-prompts is the body's `trace_id`, not the path's word.
        assert_eq!(trace_in_path("/api/2.0/mlflow/traces/link-prompts"), None);
        assert_eq!(
            trace_in_path("/api/2.0/mlflow/traces/tr%2D1").as_deref(),
            Some("tr-1")
        );
        assert_eq!(trace_in_path("/api/3.0/mlflow/traces/get"), None);
    }

    #[test]
    fn unknown_routes_and_methods_have_no_rule() {
        // The middleware refuses these to non-admins.
        assert_eq!(need(GET, "/api/2.0/mlflow/runs/log-batch"), None);
        assert_eq!(need(POST, "/api/2.0/mlflow/no-such-thing"), None);
        assert_eq!(need(GET, "/api/2.0/mlflow/users/delete"), None);
    }

    #[test]
    fn each_method_and_path_has_one_rule() {
        for (i, a) in RULES.iter().enumerate() {
            for b in &RULES[i + 1..] {
                assert!(
                    !(a.method == b.method && a.path == b.path),
                    "{} {} twice",
                    a.method,
                    a.path
                );
            }
        }
    }

    #[test]
    fn segments_are_decoded() {
        assert_eq!(
            segment_after("/serving/models/my%20model/1/invocations", "models").as_deref(),
            Some("my model")
        );
        assert_eq!(
            segment_after("/api/2.0/mlflow/logged-models/", "logged-models"),
            None
        );
    }
}
