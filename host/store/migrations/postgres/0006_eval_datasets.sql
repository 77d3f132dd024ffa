-- PostgreSQL form of ../0006_eval_datasets.sql (same number, same tables and indexes): BIGINT for
-- SQLite's INTEGER and the C collation so text sorts and compares byte by byte as in SQLite. The
-- records' JSON fields stay text: they are read whole, never queried into, and text keeps the
-- keys in the order the client gave them (JSONB would reorder them).
CREATE TABLE evaluation_datasets (
    dataset_id       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name             TEXT COLLATE "C" NOT NULL,
    schema_json      TEXT,
    profile          TEXT,
    digest           TEXT COLLATE "C" NOT NULL,
    created_time     BIGINT NOT NULL,
    last_update_time BIGINT NOT NULL,
    created_by       TEXT COLLATE "C",
    last_updated_by  TEXT COLLATE "C"
);
CREATE INDEX evaluation_datasets_name ON evaluation_datasets (name);
CREATE INDEX evaluation_datasets_created ON evaluation_datasets (created_time);

CREATE TABLE evaluation_dataset_tags (
    dataset_id TEXT COLLATE "C" NOT NULL REFERENCES evaluation_datasets (dataset_id) ON DELETE CASCADE,
    key        TEXT COLLATE "C" NOT NULL,
    value      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (dataset_id, key)
);
CREATE INDEX evaluation_dataset_tags_key_value ON evaluation_dataset_tags (key, value);

CREATE TABLE evaluation_dataset_records (
    dataset_record_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    dataset_id        TEXT COLLATE "C" NOT NULL REFERENCES evaluation_datasets (dataset_id) ON DELETE CASCADE,
    inputs            TEXT NOT NULL,
    outputs           TEXT,
    expectations      TEXT,
    tags              TEXT,
    source            TEXT,
    source_id         TEXT COLLATE "C",
    source_type       TEXT COLLATE "C",
    created_time      BIGINT NOT NULL,
    last_update_time  BIGINT NOT NULL,
    created_by        TEXT COLLATE "C",
    last_updated_by   TEXT COLLATE "C",
    -- SHA-256 of the inputs as canonical JSON: one record per distinct inputs.
    input_hash        TEXT COLLATE "C" NOT NULL,
    UNIQUE (dataset_id, input_hash)
);
CREATE INDEX evaluation_dataset_records_page
    ON evaluation_dataset_records (dataset_id, created_time, dataset_record_id);

CREATE TABLE evaluation_dataset_experiments (
    dataset_id    TEXT COLLATE "C" NOT NULL REFERENCES evaluation_datasets (dataset_id) ON DELETE CASCADE,
    experiment_id BIGINT NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
    created_time  BIGINT NOT NULL,
    PRIMARY KEY (dataset_id, experiment_id)
);
CREATE INDEX evaluation_dataset_experiments_experiment
    ON evaluation_dataset_experiments (experiment_id, dataset_id);
