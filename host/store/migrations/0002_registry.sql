-- Model registry schema. Names are the keys, as in MLflow's SQL store; renaming a model cascades
-- to its versions, their tags and the aliases. Deleted versions stay as 'Deleted_Internal' rows
-- (redacted) so that a model never reuses a version number, as in MLflow.
CREATE TABLE registered_models (
    name              TEXT    PRIMARY KEY,
    creation_time     INTEGER NOT NULL,
    last_updated_time INTEGER NOT NULL,
    description       TEXT
) WITHOUT ROWID;
CREATE INDEX registered_models_updated ON registered_models (last_updated_time);

CREATE TABLE registered_model_tags (
    name  TEXT NOT NULL REFERENCES registered_models (name) ON DELETE CASCADE ON UPDATE CASCADE,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (name, key)
) WITHOUT ROWID;
CREATE INDEX registered_model_tags_key_value ON registered_model_tags (key, value);

CREATE TABLE model_versions (
    name              TEXT    NOT NULL REFERENCES registered_models (name)
                                  ON DELETE CASCADE ON UPDATE CASCADE,
    version           INTEGER NOT NULL,
    creation_time     INTEGER NOT NULL,
    last_updated_time INTEGER NOT NULL,
    description       TEXT,
    user_id           TEXT,
    current_stage     TEXT    NOT NULL DEFAULT 'None',
    source            TEXT    NOT NULL,
    -- Where the files are: the logged model's or run's artifact location the source resolves to.
    storage_location  TEXT    NOT NULL,
    run_id            TEXT    NOT NULL DEFAULT '',
    run_link          TEXT    NOT NULL DEFAULT '',
    model_id          TEXT,
    status            TEXT    NOT NULL DEFAULT 'READY',
    status_message    TEXT,
    PRIMARY KEY (name, version)
) WITHOUT ROWID;
-- The default search order: most recently updated first, then name, then newest version.
CREATE INDEX model_versions_updated ON model_versions (last_updated_time DESC, name, version DESC);
CREATE INDEX model_versions_run ON model_versions (run_id);
CREATE INDEX model_versions_stage ON model_versions (name, current_stage, version DESC);

CREATE TABLE model_version_tags (
    name    TEXT    NOT NULL,
    version INTEGER NOT NULL,
    key     TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (name, version, key),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
        ON DELETE CASCADE ON UPDATE CASCADE
) WITHOUT ROWID;
CREATE INDEX model_version_tags_key_value ON model_version_tags (key, value);

CREATE TABLE registered_model_aliases (
    name    TEXT    NOT NULL,
    alias   TEXT    NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES model_versions (name, version)
        ON DELETE CASCADE ON UPDATE CASCADE
) WITHOUT ROWID;

-- Every change to a model, a version, its stage, tags or aliases. Not tied to the model by a
-- foreign key: the history outlives a deleted model.
CREATE TABLE registry_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    timestamp INTEGER NOT NULL,
    user_id   TEXT    NOT NULL DEFAULT '',
    name      TEXT    NOT NULL,
    version   INTEGER,
    kind      TEXT    NOT NULL,
    details   TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX registry_events_name ON registry_events (name, version, id);
