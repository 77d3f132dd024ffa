-- Each assessment keeps its trace's experiment and integer key (both fixed for the trace's
-- life), and the index `assessments_holders` lists the valid assessments by experiment, kind,
-- name and trace. The experiment comes first so that no other query over assessments can use
-- it: every other one names kind and name but not the experiment, and SQLite (which keeps no
-- statistics here) preferred an index on (kind, name, ...) to `assessments_trace` for the
-- probe of each trace by a `feedback.<name> = ...` search, and to `assessments_session` for
-- its sessions' query: 1.2-1.6 s against 3 ms at 100,000 traces. With it a search can count the traces of its experiments that hold a
-- valid assessment of a name without reading the traces: when every trace holds one,
-- `feedback.<name> IS NULL` matches nothing, which the search itself only learns by probing
-- every trace (37-52 ms at 100,000 traces; see trace_rules.rs `held_by_all_queries`).
-- The table is rebuilt, not altered, so that both columns are NOT NULL as the write path
-- fills them (SQLite adds a NOT NULL column only with a default, which would hide a write
-- that forgot them).

CREATE TABLE assessments_new (
    assessment_id TEXT PRIMARY KEY,
    trace_id      TEXT NOT NULL REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    value         TEXT,
    valid         INTEGER NOT NULL DEFAULT 1,
    created       BIGINT NOT NULL,
    body          TEXT NOT NULL,
    session_level INTEGER NOT NULL DEFAULT 0,
    experiment_id INTEGER NOT NULL,
    trace_key     INTEGER NOT NULL
);
INSERT INTO assessments_new (assessment_id, trace_id, name, kind, value, valid, created, body,
                             session_level, experiment_id, trace_key)
    SELECT a.assessment_id, a.trace_id, a.name, a.kind, a.value, a.valid, a.created, a.body,
           a.session_level, t.experiment_id, t.trace_key
    FROM assessments a JOIN trace_info t ON t.trace_id = a.trace_id ORDER BY a.rowid;
DROP TABLE assessments;
ALTER TABLE assessments_new RENAME TO assessments;

CREATE INDEX assessments_trace ON assessments (trace_id);
CREATE INDEX assessments_session ON assessments (name) WHERE session_level = 1;
CREATE INDEX assessments_holders ON assessments (experiment_id, kind, name, trace_key)
    WHERE valid = 1;
