-- Integer trace keys: a trace's children (`spans`, `trace_tags`, `trace_metadata`) are keyed by
-- its integer `trace_key`, given in arrival order, instead of its random text id. Keyed by the
-- text id, each trace of an OTLP write landed its rows on random leaf pages of three indexes
-- (a commit of 100 spans wrote ~91 WAL pages, 60 of them such leaves); keyed by arrival order,
-- they append to the right edge of each tree. Reads and writes still name traces by their text
-- id: they resolve the key through `trace_info`'s unique index on `trace_id`, once a batch.
--
-- `trace_info` is rebuilt with `trace_key` as its INTEGER PRIMARY KEY (the rowid, which VACUUM
-- keeps for such a column): existing traces keep their arrival (rowid) order, and a new trace
-- gets max + 1 (SQLite has one writer). A purged newest trace's key may be reused: its rows went
-- with it (ON DELETE CASCADE).
--
-- `assessments`, `trace_runs` and `trace_prompts` keep the text id: they are written a row at a
-- time by API calls, not by OTLP ingest, and keyed by text they stay as they are in every query
-- that reads them. They are rebuilt too, unchanged, only because dropping the old `trace_info`
-- (foreign keys are on in the migration's transaction) would cascade-delete them otherwise.
--
-- `trace_tags` and `trace_metadata` are WITHOUT ROWID (a row is a few dozen bytes: the key is
-- the table). `spans` stays a rowid table with its primary key index: a span row is 0.5-5 KB,
-- past the ~1 KB a WITHOUT ROWID tree keeps on its page before overflow pages, and under OTLP
-- ingest (scripts/bench_traces.py --otlp-only, 200,000 spans, 6 runs each alternated,
-- 2026-12-05 06:45-06:47 UTC, load average 4.3-6.3) the two were the same: the writer thread
-- 6.2-7.3 us a span both (main's text-keyed tables: 8.9-9.8), 2,525-2,837 bytes written a span
-- as a rowid table against 2,678-2,807 WITHOUT ROWID (main's: 5,456-5,623).

CREATE TABLE trace_info_new (
    trace_key          INTEGER PRIMARY KEY,
    trace_id           TEXT NOT NULL UNIQUE,
    experiment_id      INTEGER NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
    request_time       BIGINT NOT NULL,
    execution_duration BIGINT,
    state              TEXT NOT NULL,
    client_request_id  TEXT,
    request_preview    TEXT,
    response_preview   TEXT
);
INSERT INTO trace_info_new (trace_key, trace_id, experiment_id, request_time,
                            execution_duration, state, client_request_id, request_preview,
                            response_preview)
    SELECT rowid, trace_id, experiment_id, request_time, execution_duration, state,
           client_request_id, request_preview, response_preview
    FROM trace_info ORDER BY rowid;

CREATE TABLE trace_tags_new (
    trace_key INTEGER NOT NULL REFERENCES trace_info_new (trace_key) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT,
    PRIMARY KEY (trace_key, key)
) WITHOUT ROWID;
INSERT INTO trace_tags_new (trace_key, key, value)
    SELECT t.trace_key, g.key, g.value
    FROM trace_tags g JOIN trace_info_new t ON t.trace_id = g.trace_id ORDER BY 1, 2;

CREATE TABLE trace_metadata_new (
    trace_key INTEGER NOT NULL REFERENCES trace_info_new (trace_key) ON DELETE CASCADE,
    key       TEXT NOT NULL,
    value     TEXT,
    PRIMARY KEY (trace_key, key)
) WITHOUT ROWID;
INSERT INTO trace_metadata_new (trace_key, key, value)
    SELECT t.trace_key, m.key, m.value
    FROM trace_metadata m JOIN trace_info_new t ON t.trace_id = m.trace_id ORDER BY 1, 2;

CREATE TABLE spans_new (
    trace_key      INTEGER NOT NULL REFERENCES trace_info_new (trace_key) ON DELETE CASCADE,
    span_id        TEXT NOT NULL,
    parent_span_id TEXT,
    name           TEXT NOT NULL,
    span_type      TEXT,
    status         TEXT NOT NULL,
    start_time_ns  BIGINT NOT NULL,
    end_time_ns    BIGINT,
    -- The span as MLflow's JSON (`json.dumps(Span.to_dict())`), for `span.attributes.<key>`
    -- and `span.content` filters.
    content        TEXT NOT NULL,
    body           BLOB NOT NULL,
    PRIMARY KEY (trace_key, span_id)
);
INSERT INTO spans_new (trace_key, span_id, parent_span_id, name, span_type, status,
                       start_time_ns, end_time_ns, content, body)
    SELECT t.trace_key, s.span_id, s.parent_span_id, s.name, s.span_type, s.status,
           s.start_time_ns, s.end_time_ns, s.content, s.body
    FROM spans s JOIN trace_info_new t ON t.trace_id = s.trace_id ORDER BY t.trace_key, s.rowid;

CREATE TABLE assessments_new (
    assessment_id TEXT PRIMARY KEY,
    trace_id      TEXT NOT NULL REFERENCES trace_info_new (trace_id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    value         TEXT,
    valid         INTEGER NOT NULL DEFAULT 1,
    created       BIGINT NOT NULL,
    body          TEXT NOT NULL,
    session_level INTEGER NOT NULL DEFAULT 0
);
INSERT INTO assessments_new (assessment_id, trace_id, name, kind, value, valid, created, body,
                             session_level)
    SELECT assessment_id, trace_id, name, kind, value, valid, created, body, session_level
    FROM assessments ORDER BY rowid;

CREATE TABLE trace_runs_new (
    trace_id TEXT NOT NULL REFERENCES trace_info_new (trace_id) ON DELETE CASCADE,
    run_id   TEXT NOT NULL,
    PRIMARY KEY (trace_id, run_id)
);
INSERT INTO trace_runs_new (trace_id, run_id) SELECT trace_id, run_id FROM trace_runs;

CREATE TABLE trace_prompts_new (
    trace_id TEXT NOT NULL REFERENCES trace_info_new (trace_id) ON DELETE CASCADE,
    prompt   TEXT NOT NULL,
    PRIMARY KEY (trace_id, prompt)
);
INSERT INTO trace_prompts_new (trace_id, prompt) SELECT trace_id, prompt FROM trace_prompts;

-- Children first: the old `trace_info` has none left when it goes, so nothing cascades.
DROP TABLE spans;
DROP TABLE trace_tags;
DROP TABLE trace_metadata;
DROP TABLE assessments;
DROP TABLE trace_runs;
DROP TABLE trace_prompts;
DROP TABLE trace_info;
-- Renaming `trace_info_new` rewrites the new children's references to it.
ALTER TABLE trace_info_new RENAME TO trace_info;
ALTER TABLE trace_tags_new RENAME TO trace_tags;
ALTER TABLE trace_metadata_new RENAME TO trace_metadata;
ALTER TABLE spans_new RENAME TO spans;
ALTER TABLE assessments_new RENAME TO assessments;
ALTER TABLE trace_runs_new RENAME TO trace_runs;
ALTER TABLE trace_prompts_new RENAME TO trace_prompts;

-- The indexes of 0005, 0007, 0012 and 0013, on the rebuilt tables.
CREATE INDEX trace_info_experiment_time ON trace_info (experiment_id, request_time, trace_id);
CREATE INDEX trace_info_time ON trace_info (request_time);
CREATE INDEX assessments_trace ON assessments (trace_id);
CREATE INDEX assessments_session ON assessments (name) WHERE session_level = 1;
CREATE INDEX trace_runs_run ON trace_runs (run_id);
CREATE INDEX trace_prompts_prompt ON trace_prompts (prompt);
CREATE INDEX trace_metadata_session ON trace_metadata (value) WHERE key = 'mlflow.trace.session';
