-- Webhooks (MLflow 3.3+): the registry calls each subscribed URL when a model, version, tag or
-- alias changes. A deleted webhook stays as a row with deleted_timestamp set, as in MLflow's SQL
-- store. The secret is kept encrypted (a Fernet token, as MLflow keeps it), never in clear.
CREATE TABLE webhooks (
    webhook_id             TEXT    NOT NULL PRIMARY KEY,
    name                   TEXT    NOT NULL,
    description            TEXT,
    url                    TEXT    NOT NULL,
    status                 TEXT    NOT NULL DEFAULT 'ACTIVE',
    secret                 TEXT,
    creation_timestamp     INTEGER NOT NULL,
    last_updated_timestamp INTEGER,
    deleted_timestamp      INTEGER
);
CREATE INDEX webhooks_created ON webhooks (creation_timestamp DESC);

-- The events a webhook subscribes to, in the order they were given.
CREATE TABLE webhook_events (
    webhook_id TEXT    NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
    entity     TEXT    NOT NULL,
    action     TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, entity, action)
) WITHOUT ROWID;
CREATE INDEX webhook_events_event ON webhook_events (entity, action);

-- One row per delivery (MLflow only logs them): its outcome after the last attempt.
CREATE TABLE webhook_deliveries (
    delivery_id     TEXT    NOT NULL PRIMARY KEY,
    webhook_id      TEXT    NOT NULL,
    entity          TEXT    NOT NULL,
    action          TEXT    NOT NULL,
    timestamp       INTEGER NOT NULL,
    attempts        INTEGER NOT NULL,
    success         INTEGER NOT NULL,
    response_status INTEGER,
    error           TEXT,
    duration_ms     INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, timestamp);
