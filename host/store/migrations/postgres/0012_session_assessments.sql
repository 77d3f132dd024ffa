-- Session-level assessments and feedback without a value, as MLflow 3.17's SQL store keeps them.
-- An assessment whose metadata names a session (`mlflow.trace.session`, as the session scorers
-- of `mlflow.genai.evaluate` write them) makes `feedback.<name>` / `expectation.<name>` filters
-- match every trace of the session of the trace that holds it: `session_level` marks it, and
-- the partial index finds the few such assessments of a name. A feedback without a value is
-- kept as MLflow keeps it, the text `null` (an older wasmflow kept SQL NULL). Both columns are
-- set from each row's stored message by the code the write path uses, so this migration is a
-- Rust step (host/store/src/assessment_columns.rs) run after this file, in the same transaction.
ALTER TABLE assessments ADD COLUMN session_level BIGINT NOT NULL DEFAULT 0;
CREATE INDEX assessments_session ON assessments (name) WHERE session_level = 1;
