-- PostgreSQL form of ../0009_latest_metrics_experiment.sql: latest_metrics carries its run's
-- experiment, and (experiment_id, key, is_nan, value) replaces (key, value), so search's top-k by
-- a metric is one index range read in order.
ALTER TABLE latest_metrics ADD COLUMN experiment_id BIGINT;
UPDATE latest_metrics l SET experiment_id = r.experiment_id FROM runs r WHERE r.run_uuid = l.run_uuid;
ALTER TABLE latest_metrics ALTER COLUMN experiment_id SET NOT NULL;
DROP INDEX latest_metrics_key_value;
CREATE INDEX latest_metrics_experiment_key_value
    ON latest_metrics (experiment_id, key, is_nan, value);
