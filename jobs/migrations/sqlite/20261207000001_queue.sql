-- The job queue (SQLite). A job is a kind and its JSON args, run by the handler registered for
-- its kind; the queue stores its progress, checkpoints and output without reading them.
-- Times are unix epoch milliseconds (UTC); JSON is stored as text.

create table queue_jobs (
    id               integer primary key autoincrement,
    job_id           text    not null unique,
    kind             text    not null,
    owner            text    not null,
    parent_id        text,
    child_limit      integer,
    args             text    not null,
    state            text    not null default 'pending'
                     check (state in ('waiting', 'pending', 'running', 'completed', 'failed', 'timeout', 'cancelled')),
    priority         integer not null default 0,
    attempt          integer not null default 0,
    max_attempts     integer not null default 3,
    lease_owner      text,
    lease_expires_at integer,
    heartbeat_at     integer,
    cancel_requested integer not null default 0,
    version          integer not null default 1,
    idempotency_key  text,
    args_hash        text,
    timeout_ms       integer not null,
    timeout_at       integer,
    progress         text    not null default '{}',
    checkpoints      text    not null default '{}',
    output           text,
    error            text,
    created_at       integer not null,
    started_at       integer,
    completed_at     integer,
    updated_at       integer not null
);

create index queue_jobs_owner on queue_jobs (owner, created_at desc);
create index queue_jobs_state on queue_jobs (state);
create index queue_jobs_created_at on queue_jobs (created_at desc);
-- The claim: the highest-priority, oldest pending job.
create index queue_jobs_claim on queue_jobs (priority desc, created_at, id) where state = 'pending';
-- The claim counts each owner's running jobs; the rescuer scans running jobs by lease.
create index queue_jobs_running on queue_jobs (owner) where state = 'running';
create index queue_jobs_lease on queue_jobs (lease_expires_at) where state = 'running';
create index queue_jobs_finished on queue_jobs (completed_at) where state in ('completed', 'failed', 'timeout', 'cancelled');
create index queue_jobs_parent on queue_jobs (parent_id) where parent_id is not null;
create unique index queue_jobs_idempotency on queue_jobs (owner, idempotency_key) where idempotency_key is not null;

-- Finished jobs the janitor moved out of the live table, with when it did.
create table queue_jobs_archive (
    id               integer primary key,
    job_id           text    not null unique,
    kind             text    not null,
    owner            text    not null,
    parent_id        text,
    child_limit      integer,
    args             text    not null,
    state            text    not null,
    priority         integer not null,
    attempt          integer not null,
    max_attempts     integer not null,
    lease_owner      text,
    lease_expires_at integer,
    heartbeat_at     integer,
    cancel_requested integer not null,
    version          integer not null,
    idempotency_key  text,
    args_hash        text,
    timeout_ms       integer not null,
    timeout_at       integer,
    progress         text    not null,
    checkpoints      text    not null,
    output           text,
    error            text,
    created_at       integer not null,
    started_at       integer,
    completed_at     integer,
    updated_at       integer not null,
    archived_at      integer not null
);

create index queue_jobs_archive_owner on queue_jobs_archive (owner, created_at desc);
create index queue_jobs_archive_parent on queue_jobs_archive (parent_id) where parent_id is not null;
create index queue_jobs_archive_archived_at on queue_jobs_archive (archived_at);
