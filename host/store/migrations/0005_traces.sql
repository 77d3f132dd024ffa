-- MLflow 3's traces (TraceInfoV3), their tags, metadata, spans, assessments and links to runs.
-- Traces are append-heavy: spans arrive in many small writes, so rows are narrow and each span's
-- body is its OTLP protobuf message as received.

CREATE TABLE trace_info (
    trace_id           TEXT PRIMARY KEY,
    experiment_id      INTEGER NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
    request_time       BIGINT NOT NULL,
    execution_duration BIGINT,
    state              TEXT NOT NULL,
    client_request_id  TEXT,
    request_preview    TEXT,
    response_preview   TEXT
);
CREATE INDEX trace_info_experiment_time ON trace_info (experiment_id, request_time, trace_id);
CREATE INDEX trace_info_time ON trace_info (request_time);

CREATE TABLE trace_tags (
    trace_id TEXT NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT,
    PRIMARY KEY (trace_id, key)
);

CREATE TABLE trace_metadata (
    trace_id TEXT NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    key      TEXT NOT NULL,
    value    TEXT,
    PRIMARY KEY (trace_id, key)
);

CREATE TABLE spans (
    trace_id       TEXT NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    span_id        TEXT NOT NULL,
    parent_span_id TEXT,
    name           TEXT NOT NULL,
    span_type      TEXT,
    status         TEXT NOT NULL,
    start_time_ns  BIGINT NOT NULL,
    end_time_ns    BIGINT,
    -- The span as JSON (name, status, attributes with decoded values, events), for
    -- `span.attributes.<key>` and `span.content` filters.
    content        TEXT NOT NULL,
    body           BLOB NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);

CREATE TABLE assessments (
    assessment_id TEXT PRIMARY KEY,
    trace_id      TEXT NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    -- The value as JSON text, for `feedback.<name>` filters.
    value         TEXT,
    valid         INTEGER NOT NULL DEFAULT 1,
    created       BIGINT NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX assessments_trace ON assessments (trace_id);

CREATE TABLE trace_runs (
    trace_id TEXT NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    run_id   TEXT NOT NULL,
    PRIMARY KEY (trace_id, run_id)
);
CREATE INDEX trace_runs_run ON trace_runs (run_id);
