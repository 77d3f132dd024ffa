-- Search's top-k by a metric walks an index of that experiment's latest values instead of
-- filtering every run of the experiment: latest_metrics carries its run's experiment (a run never
-- changes experiment), and (experiment_id, key, is_nan, value) replaces (key, value), so
-- "experiment E, metric K, numbers only, by value" is one index range read in order.
CREATE TABLE latest_metrics_new (
    run_uuid      TEXT    NOT NULL REFERENCES runs (run_uuid) ON DELETE CASCADE,
    key           TEXT    NOT NULL,
    experiment_id INTEGER NOT NULL,
    step          INTEGER NOT NULL,
    timestamp     INTEGER NOT NULL,
    value         REAL    NOT NULL,
    is_nan        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_uuid, key)
) WITHOUT ROWID;
INSERT INTO latest_metrics_new (run_uuid, key, experiment_id, step, timestamp, value, is_nan)
    SELECT l.run_uuid, l.key, r.experiment_id, l.step, l.timestamp, l.value, l.is_nan
    FROM latest_metrics l JOIN runs r ON r.run_uuid = l.run_uuid;
DROP TABLE latest_metrics;
ALTER TABLE latest_metrics_new RENAME TO latest_metrics;
CREATE INDEX latest_metrics_experiment_key_value
    ON latest_metrics (experiment_id, key, is_nan, value);
