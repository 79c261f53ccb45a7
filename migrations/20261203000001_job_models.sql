-- Which stored models each job references and why (jobs::references::ModelRole):
-- its own model as 'input', a distill job's stored student as 'student'. "Is this
-- model in use" is then a join here, whatever job kind names it.
CREATE TABLE job_models (
    job_id   BLOB NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    -- No foreign key: a finished job keeps naming a model that was deleted since.
    model_id BLOB NOT NULL,
    role     TEXT NOT NULL CHECK (role IN ('input', 'student')),
    PRIMARY KEY (job_id, role, model_id)
);

CREATE INDEX job_models_model ON job_models (model_id);

-- Backfill from the jobs queued before this table existed, so "in use" stays right
-- after an upgrade: every job's model, and the student a distill job's normalised
-- params name (a UUID string there, a 16-byte blob in our columns).
INSERT INTO job_models (job_id, model_id, role) SELECT id, model_id, 'input' FROM jobs;
INSERT OR IGNORE INTO job_models (job_id, model_id, role)
    SELECT id, unhex(replace(json_extract(params, '$.student.model'), '-', '')), 'student'
    FROM jobs
    WHERE kind = 'distill' AND json_type(params, '$.student.model') = 'text'
      AND length(replace(json_extract(params, '$.student.model'), '-', '')) = 32;
