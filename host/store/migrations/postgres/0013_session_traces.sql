-- The traces of a session, found by its id: a `feedback.<name>` / `expectation.<name>` filter
-- over a name with session-level assessments matches every trace of the sessions those
-- assessments cover (see migration 0012), and a search asks for those traces by their
-- `mlflow.trace.session` metadata. Partial, so that only the session rows are indexed (one a
-- trace at most); the key is written out in the queries that use it, as the planners match a
-- partial index by the predicate's text.
CREATE INDEX trace_metadata_session ON trace_metadata (value) WHERE key = 'mlflow.trace.session';
