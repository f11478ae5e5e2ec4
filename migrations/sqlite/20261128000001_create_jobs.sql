-- The durable job table of Trading Agents (SQLite, the embedded default).
-- Times are unix epoch milliseconds (UTC); JSON is stored as text.

create table trading_agent_jobs (
    id                integer primary key autoincrement,
    run_id            text    not null unique,
    user_id           text    not null,
    symbol            text    not null,
    model_id          text    not null,
    analysts          text    not null,                 -- JSON array of analyst ids
    as_of             text,                             -- YYYY-MM-DD, null = last date in the data
    status            text    not null default 'pending'
                      check (status in ('pending', 'running', 'completed', 'failed', 'timeout', 'cancelled')),
    current_step      text,
    progress_percent  integer not null default 0 check (progress_percent between 0 and 100),
    steps             text    not null default '[]',    -- JSON array of step progress
    checkpoints       text    not null default '{}',    -- JSON object: step name -> step output
    result            text,                             -- JSON AnalysisResult
    error             text,
    priority          integer not null default 0,
    attempt           integer not null default 0,
    max_attempts      integer not null default 3,
    lease_owner       text,
    lease_expires_at  integer,
    heartbeat_at      integer,
    cancel_requested  integer not null default 0,
    version           integer not null default 1,
    retry_of          text,
    idempotency_key   text,
    request_hash      text,
    timeout_ms        integer not null,
    timeout_at        integer,
    llm_calls         integer not null default 0,
    prompt_tokens     integer not null default 0,
    completion_tokens integer not null default 0,
    started_at        integer,
    completed_at      integer,
    created_at        integer not null,
    updated_at        integer not null,
    duration_ms       integer
);

create index trading_agent_jobs_user_id on trading_agent_jobs (user_id, created_at desc);
create index trading_agent_jobs_status on trading_agent_jobs (status);
create index trading_agent_jobs_created_at on trading_agent_jobs (created_at desc);
-- The claim query: the oldest, highest-priority pending job.
create index trading_agent_jobs_claim on trading_agent_jobs (priority desc, created_at, id) where status = 'pending';
-- The rescuer and reaper scan running jobs by lease and deadline.
create index trading_agent_jobs_lease on trading_agent_jobs (lease_expires_at) where status = 'running';
create index trading_agent_jobs_finished on trading_agent_jobs (completed_at) where status in ('completed', 'failed', 'timeout', 'cancelled');
create unique index trading_agent_jobs_idempotency on trading_agent_jobs (user_id, idempotency_key) where idempotency_key is not null;

create table trading_agent_jobs_archive (
    id                integer primary key,
    run_id            text    not null unique,
    user_id           text    not null,
    symbol            text    not null,
    model_id          text    not null,
    analysts          text    not null,
    as_of             text,
    status            text    not null,
    current_step      text,
    progress_percent  integer not null,
    steps             text    not null,
    checkpoints       text    not null,
    result            text,
    error             text,
    priority          integer not null,
    attempt           integer not null,
    max_attempts      integer not null,
    lease_owner       text,
    lease_expires_at  integer,
    heartbeat_at      integer,
    cancel_requested  integer not null,
    version           integer not null,
    retry_of          text,
    idempotency_key   text,
    request_hash      text,
    timeout_ms        integer not null,
    timeout_at        integer,
    llm_calls         integer not null,
    prompt_tokens     integer not null,
    completion_tokens integer not null,
    started_at        integer,
    completed_at      integer,
    created_at        integer not null,
    updated_at        integer not null,
    duration_ms       integer,
    archived_at       integer not null
);

create index trading_agent_jobs_archive_user_id on trading_agent_jobs_archive (user_id, created_at desc);

-- Small named values every process shares, e.g. the session signing key.
create table trading_agent_settings (
    name  text primary key,
    value text not null
);
