-- The janitor prunes the archive oldest first (ARCHIVE_RETENTION_DAYS), a batch at a time.
create index trading_agent_jobs_archive_archived_at on trading_agent_jobs_archive (archived_at);
