-- PostgreSQL form of ../0003_webhooks.sql (same number, same tables and indexes): BIGINT for SQLite's
-- INTEGER, identity columns for AUTOINCREMENT, and the C collation so text sorts and compares
-- byte by byte as in SQLite.
-- Webhooks (MLflow 3.3+): the registry calls each subscribed URL when a model, version, tag or
-- alias changes. A deleted webhook stays as a row with deleted_timestamp set, as in MLflow's SQL
-- store. The secret is kept encrypted (a Fernet token, as MLflow keeps it), never in clear.
CREATE TABLE webhooks (
    webhook_id             TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name                   TEXT COLLATE "C" NOT NULL,
    description            TEXT COLLATE "C",
    url                    TEXT COLLATE "C" NOT NULL,
    status                 TEXT COLLATE "C" NOT NULL DEFAULT 'ACTIVE',
    secret                 TEXT COLLATE "C",
    creation_timestamp     BIGINT  NOT NULL,
    last_updated_timestamp BIGINT,
    deleted_timestamp      BIGINT
);
CREATE INDEX webhooks_created ON webhooks (creation_timestamp DESC);

-- The events a webhook subscribes to, in the order they were given.
CREATE TABLE webhook_events (
    webhook_id TEXT COLLATE "C" NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
    entity     TEXT COLLATE "C" NOT NULL,
    action     TEXT COLLATE "C" NOT NULL,
    position   BIGINT  NOT NULL,
    PRIMARY KEY (webhook_id, entity, action)
);
CREATE INDEX webhook_events_event ON webhook_events (entity, action);

-- One row per delivery (MLflow only logs them): its outcome after the last attempt.
CREATE TABLE webhook_deliveries (
    delivery_id     TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    webhook_id      TEXT COLLATE "C" NOT NULL,
    entity          TEXT COLLATE "C" NOT NULL,
    action          TEXT COLLATE "C" NOT NULL,
    timestamp       BIGINT  NOT NULL,
    attempts        BIGINT  NOT NULL,
    success         BIGINT  NOT NULL,
    response_status BIGINT,
    error           TEXT COLLATE "C",
    duration_ms     BIGINT  NOT NULL
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, timestamp);
