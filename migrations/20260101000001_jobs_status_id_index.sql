-- The claim (`WHERE status = 'queued' ORDER BY id LIMIT 1`) and filtered lists
-- (`WHERE status = ? ORDER BY id DESC`) read this index in order instead of
-- sorting every queued job; `id` is not the rowid, so (status) alone does not help.
CREATE INDEX jobs_status_id ON jobs (status, id);
CREATE INDEX jobs_kind_id ON jobs (kind, id);
