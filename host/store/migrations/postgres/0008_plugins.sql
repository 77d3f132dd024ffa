-- Installed plugins, shared by every replica on this database: a plugin installed through one
-- serves on all. Records by (name, version); components by sha256, stored once however many
-- records name them. Each replica's --plugins-dir only caches the components it has read.
CREATE TABLE wasmflow_plugin_components (
    sha256    TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    component BYTEA NOT NULL
);

CREATE TABLE wasmflow_plugins (
    name         TEXT COLLATE "C" NOT NULL,
    version      TEXT COLLATE "C" NOT NULL,
    sha256       TEXT COLLATE "C" NOT NULL REFERENCES wasmflow_plugin_components (sha256),
    -- The flavors it loads, a JSON array of strings.
    loads        TEXT NOT NULL,
    description  TEXT NOT NULL,
    installed_at BIGINT NOT NULL,
    PRIMARY KEY (name, version)
);
