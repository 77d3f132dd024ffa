-- GenAI evaluation datasets (MLflow 3's `evaluation_datasets`): a named set of records, each
-- inputs with optional outputs and expectations, deduplicated by the hash of their inputs. Tags
-- and the experiments a dataset belongs to are their own tables; records, tags and links go with
-- their dataset, and a link goes with its experiment.
CREATE TABLE evaluation_datasets (
    dataset_id       TEXT    NOT NULL PRIMARY KEY,
    name             TEXT    NOT NULL,
    -- JSON texts, as MLflow answers them: inferred field types, and the record count.
    schema_json      TEXT,
    profile          TEXT,
    digest           TEXT    NOT NULL,
    created_time     BIGINT  NOT NULL,
    last_update_time BIGINT  NOT NULL,
    created_by       TEXT,
    last_updated_by  TEXT
);
CREATE INDEX evaluation_datasets_name ON evaluation_datasets (name);
CREATE INDEX evaluation_datasets_created ON evaluation_datasets (created_time);

CREATE TABLE evaluation_dataset_tags (
    dataset_id TEXT NOT NULL REFERENCES evaluation_datasets (dataset_id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    PRIMARY KEY (dataset_id, key)
);
CREATE INDEX evaluation_dataset_tags_key_value ON evaluation_dataset_tags (key, value);

-- Each JSON column holds the record's field as JSON text (NULL when absent).
CREATE TABLE evaluation_dataset_records (
    dataset_record_id TEXT   NOT NULL PRIMARY KEY,
    dataset_id        TEXT   NOT NULL REFERENCES evaluation_datasets (dataset_id) ON DELETE CASCADE,
    inputs            TEXT   NOT NULL,
    outputs           TEXT,
    expectations      TEXT,
    tags              TEXT,
    source            TEXT,
    source_id         TEXT,
    source_type       TEXT,
    created_time      BIGINT NOT NULL,
    last_update_time  BIGINT NOT NULL,
    created_by        TEXT,
    last_updated_by   TEXT,
    -- SHA-256 of the inputs as canonical JSON: one record per distinct inputs.
    input_hash        TEXT   NOT NULL,
    UNIQUE (dataset_id, input_hash)
);
-- Records are read in (created_time, dataset_record_id) order, the cursor of their pages.
CREATE INDEX evaluation_dataset_records_page
    ON evaluation_dataset_records (dataset_id, created_time, dataset_record_id);

CREATE TABLE evaluation_dataset_experiments (
    dataset_id    TEXT    NOT NULL REFERENCES evaluation_datasets (dataset_id) ON DELETE CASCADE,
    experiment_id INTEGER NOT NULL REFERENCES experiments (experiment_id) ON DELETE CASCADE,
    created_time  BIGINT  NOT NULL,
    PRIMARY KEY (dataset_id, experiment_id)
);
CREATE INDEX evaluation_dataset_experiments_experiment
    ON evaluation_dataset_experiments (experiment_id, dataset_id);
