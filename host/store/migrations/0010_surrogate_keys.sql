-- Integer surrogate keys in the metric tables: a run's points and latest values are keyed by the
-- run's integer `run_key` and the metric key's integer id (`metric_keys`) instead of the
-- 32-character run id and the key text, so every metric row and index entry carries two small
-- integers where it carried two strings (log-batch's B-tree inserts compare and store less).
-- Reads and writes name runs and keys by text as before: they resolve the integers through
-- `runs` (unique index on run_key) and `metric_keys` (unique key) in the same statement.

-- `runs` keeps its text primary key (every other table refers to it); run_key is a unique
-- column beside it, set from the row's rowid here and, for new runs, by the trigger below.
ALTER TABLE runs ADD COLUMN run_key INTEGER;
UPDATE runs SET run_key = rowid;
CREATE UNIQUE INDEX runs_run_key ON runs (run_key);
-- Every insert into runs gets the next key, whichever code path inserts (create-run, import).
-- Not the rowid itself: VACUUM may renumber the rowids of a table without an INTEGER PRIMARY
-- KEY, and a key must never change. A purged newest run's key may be reused: its points went
-- with it (ON DELETE CASCADE). SQLite has one writer, so max + 1 cannot race.
CREATE TRIGGER runs_assign_run_key AFTER INSERT ON runs WHEN NEW.run_key IS NULL
BEGIN
    UPDATE runs SET run_key = (SELECT coalesce(max(run_key), 0) + 1 FROM runs)
    WHERE rowid = NEW.rowid;
END;

-- Metric key texts, each once. Rows are never deleted, so an id, once read, names its key for
-- good. The metric tables' metric_key_id has no foreign key (as on PostgreSQL, where the check
-- costs each point a locking read): every id written was read from here, and none goes away.
CREATE TABLE metric_keys (
    metric_key_id INTEGER PRIMARY KEY,
    key           TEXT    NOT NULL UNIQUE
);
INSERT INTO metric_keys (key)
    SELECT key FROM metrics UNION SELECT key FROM latest_metrics ORDER BY 1;

-- Every logged point, as in 0001 (the whole row is the key, in MLflow's history order).
CREATE TABLE metrics_new (
    run_key        INTEGER NOT NULL REFERENCES runs (run_key) ON DELETE CASCADE,
    metric_key_id  INTEGER NOT NULL,
    step           INTEGER NOT NULL,
    timestamp      INTEGER NOT NULL,
    value          REAL    NOT NULL,
    is_nan         INTEGER NOT NULL DEFAULT 0,
    model_id       TEXT,
    dataset_name   TEXT,
    dataset_digest TEXT,
    PRIMARY KEY (run_key, metric_key_id, timestamp, step, value, is_nan)
) WITHOUT ROWID;
INSERT INTO metrics_new (run_key, metric_key_id, step, timestamp, value, is_nan, model_id,
                         dataset_name, dataset_digest)
    SELECT r.run_key, k.metric_key_id, m.step, m.timestamp, m.value, m.is_nan, m.model_id,
           m.dataset_name, m.dataset_digest
    FROM metrics m JOIN runs r ON r.run_uuid = m.run_uuid JOIN metric_keys k ON k.key = m.key
    ORDER BY 1, 2, 4, 3, 5, 6;
DROP TABLE metrics;
ALTER TABLE metrics_new RENAME TO metrics;
CREATE INDEX metrics_model ON metrics (model_id) WHERE model_id IS NOT NULL;

-- The newest point of each metric of a run, with its run's experiment, as in 0009.
CREATE TABLE latest_metrics_new (
    run_key       INTEGER NOT NULL REFERENCES runs (run_key) ON DELETE CASCADE,
    metric_key_id INTEGER NOT NULL,
    experiment_id INTEGER NOT NULL,
    step          INTEGER NOT NULL,
    timestamp     INTEGER NOT NULL,
    value         REAL    NOT NULL,
    is_nan        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_key, metric_key_id)
) WITHOUT ROWID;
INSERT INTO latest_metrics_new (run_key, metric_key_id, experiment_id, step, timestamp, value,
                                is_nan)
    SELECT r.run_key, k.metric_key_id, l.experiment_id, l.step, l.timestamp, l.value, l.is_nan
    FROM latest_metrics l JOIN runs r ON r.run_uuid = l.run_uuid JOIN metric_keys k ON k.key = l.key
    ORDER BY 1, 2;
DROP TABLE latest_metrics;
ALTER TABLE latest_metrics_new RENAME TO latest_metrics;
-- Search's top-k by a metric: experiment E, metric K, numbers only, by value, one range read.
CREATE INDEX latest_metrics_experiment_key_value
    ON latest_metrics (experiment_id, metric_key_id, is_nan, value);
