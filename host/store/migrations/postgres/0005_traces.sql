-- PostgreSQL form of ../0005_traces.sql (same number, same tables and indexes): BIGINT for SQLite's
-- INTEGER, BYTEA for BLOB, and the C collation so text sorts and compares byte by byte as in
-- SQLite. A span keeps its JSON `content` as text (what `span.content LIKE ...` matches, as on
-- SQLite) and its attributes as JSONB beside it, which `span.attributes.<key>` filters query into.
CREATE TABLE trace_info (
    trace_id           TEXT COLLATE "C" PRIMARY KEY,
    experiment_id      BIGINT NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
    request_time       BIGINT NOT NULL,
    execution_duration BIGINT,
    state              TEXT COLLATE "C" NOT NULL,
    client_request_id  TEXT COLLATE "C",
    request_preview    TEXT COLLATE "C",
    response_preview   TEXT COLLATE "C"
);
CREATE INDEX trace_info_experiment_time ON trace_info (experiment_id, request_time, trace_id);
CREATE INDEX trace_info_time ON trace_info (request_time);

CREATE TABLE trace_tags (
    trace_id TEXT COLLATE "C" NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    key      TEXT COLLATE "C" NOT NULL,
    value    TEXT COLLATE "C",
    PRIMARY KEY (trace_id, key)
);

CREATE TABLE trace_metadata (
    trace_id TEXT COLLATE "C" NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    key      TEXT COLLATE "C" NOT NULL,
    value    TEXT COLLATE "C",
    PRIMARY KEY (trace_id, key)
);

CREATE TABLE spans (
    trace_id       TEXT COLLATE "C" NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    span_id        TEXT COLLATE "C" NOT NULL,
    parent_span_id TEXT COLLATE "C",
    name           TEXT COLLATE "C" NOT NULL,
    span_type      TEXT COLLATE "C",
    status         TEXT COLLATE "C" NOT NULL,
    start_time_ns  BIGINT NOT NULL,
    end_time_ns    BIGINT,
    -- The span as JSON text (name, status, attributes with decoded values, events), for
    -- `span.content` filters; its `attributes` object as JSONB, for `span.attributes.<key>`.
    content        TEXT COLLATE "C" NOT NULL,
    attributes     JSONB NOT NULL DEFAULT '{}',
    body           BYTEA NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);

CREATE TABLE assessments (
    assessment_id TEXT COLLATE "C" PRIMARY KEY,
    trace_id      TEXT COLLATE "C" NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    name          TEXT COLLATE "C" NOT NULL,
    kind          TEXT COLLATE "C" NOT NULL,
    -- The value as JSON text, for `feedback.<name>` filters (compared as text, as on SQLite).
    value         TEXT COLLATE "C",
    valid         BIGINT NOT NULL DEFAULT 1,
    created       BIGINT NOT NULL,
    body          TEXT NOT NULL
);
CREATE INDEX assessments_trace ON assessments (trace_id);

CREATE TABLE trace_runs (
    trace_id TEXT COLLATE "C" NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    run_id   TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (trace_id, run_id)
);
CREATE INDEX trace_runs_run ON trace_runs (run_id);
