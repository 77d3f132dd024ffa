-- PostgreSQL form of ../0015_assessment_holders.sql: each assessment keeps its trace's
-- experiment and integer key, and `assessments_holders` lists the valid ones by experiment,
-- kind, name and trace (the experiment first: see the SQLite file), so that a search can
-- count the traces holding a valid assessment of a name from the index alone. The table is
-- rebuilt rather than updated in place: an UPDATE of every row would leave as many dead rows,
-- and clear the visibility map those index-only counts rely on, until a VACUUM (see 0014).

CREATE TABLE assessments_new (
    assessment_id TEXT COLLATE "C" CONSTRAINT assessments_new_pkey PRIMARY KEY,
    trace_id      TEXT COLLATE "C" NOT NULL CONSTRAINT assessments_trace_id_fkey
        REFERENCES trace_info (trace_id) ON DELETE CASCADE,
    name          TEXT COLLATE "C" NOT NULL,
    kind          TEXT COLLATE "C" NOT NULL,
    value         TEXT COLLATE "C",
    valid         BIGINT NOT NULL DEFAULT 1,
    created       BIGINT NOT NULL,
    body          TEXT NOT NULL,
    session_level BIGINT NOT NULL DEFAULT 0,
    experiment_id BIGINT NOT NULL,
    trace_key     BIGINT NOT NULL
);
INSERT INTO assessments_new (assessment_id, trace_id, name, kind, value, valid, created, body,
                             session_level, experiment_id, trace_key)
    SELECT a.assessment_id, a.trace_id, a.name, a.kind, a.value, a.valid, a.created, a.body,
           a.session_level, t.experiment_id, t.trace_key
    FROM assessments a JOIN trace_info t ON t.trace_id = a.trace_id ORDER BY a.created;
DROP TABLE assessments;
ALTER TABLE assessments_new RENAME TO assessments;
ALTER TABLE assessments RENAME CONSTRAINT assessments_new_pkey TO assessments_pkey;

CREATE INDEX assessments_trace ON assessments (trace_id);
CREATE INDEX assessments_session ON assessments (name) WHERE session_level = 1;
CREATE INDEX assessments_holders ON assessments (experiment_id, kind, name, trace_key)
    WHERE valid = 1;
ANALYZE assessments;
