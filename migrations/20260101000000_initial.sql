-- kiln's initial schema. Ids are UUID v7 stored as 16-byte blobs, so ordering
-- by id is ordering by creation time; timestamps are unix milliseconds.

CREATE TABLE datasets (
    id            BLOB PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    format        TEXT NOT NULL CHECK (format IN ('csv', 'npz')),
    task          TEXT NOT NULL CHECK (task IN ('binary', 'multiclass', 'regression')),
    rows          INTEGER NOT NULL,
    features      INTEGER NOT NULL,
    classes       INTEGER NOT NULL,
    label_column  TEXT,
    sha256        TEXT NOT NULL,
    size_bytes    INTEGER NOT NULL,
    data_sha256   TEXT NOT NULL,
    feature_names TEXT
);

CREATE TABLE jobs (
    id               BLOB PRIMARY KEY NOT NULL,
    kind             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    model_id         BLOB NOT NULL,
    dataset_id       BLOB NOT NULL,
    eval_dataset_id  BLOB,
    params           TEXT NOT NULL,
    progress         REAL NOT NULL DEFAULT 0,
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    lease_until      INTEGER,
    heartbeat_at     INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    result           TEXT,
    idempotency_key  TEXT UNIQUE,
    request_hash     TEXT,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);

CREATE INDEX jobs_status ON jobs (status);
CREATE INDEX jobs_kind ON jobs (kind);
CREATE INDEX jobs_model ON jobs (model_id);
CREATE INDEX jobs_dataset ON jobs (dataset_id);
CREATE INDEX jobs_eval_dataset ON jobs (eval_dataset_id);

CREATE TABLE models (
    id             BLOB PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    architecture   TEXT NOT NULL,
    params         INTEGER NOT NULL,
    nonzero_params INTEGER NOT NULL,
    size_bytes     INTEGER NOT NULL,
    dtype          TEXT NOT NULL,
    sha256         TEXT NOT NULL,
    trained        INTEGER NOT NULL,
    -- A parent or producing job may be deleted later; lineage then reads NULL.
    parent_id      BLOB REFERENCES models (id) ON DELETE SET NULL,
    job_id         BLOB REFERENCES jobs (id) ON DELETE SET NULL,
    task           TEXT
);

CREATE INDEX models_sha256 ON models (sha256);
CREATE INDEX datasets_sha256 ON datasets (sha256);
CREATE INDEX datasets_data_sha256 ON datasets (data_sha256);

CREATE TABLE job_metrics (
    job_id     BLOB NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    step       INTEGER NOT NULL,
    name       TEXT NOT NULL,
    value      REAL NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, step, name)
);

CREATE TABLE artifacts (
    id           BLOB PRIMARY KEY NOT NULL,
    job_id       BLOB NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    content_type TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE INDEX artifacts_job ON artifacts (job_id);
CREATE INDEX artifacts_sha256 ON artifacts (sha256);
