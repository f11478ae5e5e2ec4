-- The durable job table of Trading Agents (PostgreSQL, for running several processes).

create table trading_agent_jobs (
    id                bigint generated always as identity primary key,
    run_id            uuid        not null unique,
    user_id           text        not null,
    symbol            text        not null,
    model_id          text        not null,
    analysts          jsonb       not null,
    as_of             date,
    status            text        not null default 'pending'
                      check (status in ('pending', 'running', 'completed', 'failed', 'timeout', 'cancelled')),
    current_step      text,
    progress_percent  smallint    not null default 0 check (progress_percent between 0 and 100),
    steps             jsonb       not null default '[]',
    checkpoints       jsonb       not null default '{}',
    result            jsonb,
    error             text,
    priority          integer     not null default 0,
    attempt           integer     not null default 0,
    max_attempts      integer     not null default 3,
    lease_owner       text,
    lease_expires_at  timestamptz,
    heartbeat_at      timestamptz,
    cancel_requested  boolean     not null default false,
    version           bigint      not null default 1,
    retry_of          uuid,
    idempotency_key   text,
    request_hash      text,
    timeout_ms        bigint      not null,
    timeout_at        timestamptz,
    llm_calls         integer     not null default 0,
    prompt_tokens     bigint      not null default 0,
    completion_tokens bigint      not null default 0,
    started_at        timestamptz,
    completed_at      timestamptz,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    duration_ms       bigint
);

create index trading_agent_jobs_user_id on trading_agent_jobs (user_id, created_at desc);
create index trading_agent_jobs_status on trading_agent_jobs (status);
create index trading_agent_jobs_created_at on trading_agent_jobs (created_at desc);
create index trading_agent_jobs_claim on trading_agent_jobs (priority desc, created_at, id) where status = 'pending';
create index trading_agent_jobs_lease on trading_agent_jobs (lease_expires_at) where status = 'running';
create index trading_agent_jobs_finished on trading_agent_jobs (completed_at) where status in ('completed', 'failed', 'timeout', 'cancelled');
create unique index trading_agent_jobs_idempotency on trading_agent_jobs (user_id, idempotency_key) where idempotency_key is not null;

-- updated_at follows every visible change (a bump of version) that did not set it itself,
-- so hand-written fixes by an operator keep it true. Heartbeats do not bump version.
create function trading_agent_jobs_touch() returns trigger language plpgsql as $$
begin
    if new.updated_at is not distinct from old.updated_at then
        new.updated_at := now();
    end if;
    return new;
end
$$;

create trigger trading_agent_jobs_touch
    before update on trading_agent_jobs
    for each row
    when (old.version is distinct from new.version)
    execute function trading_agent_jobs_touch();

create table trading_agent_jobs_archive (
    like trading_agent_jobs,
    archived_at timestamptz not null default now(),
    primary key (id),
    unique (run_id)
);

create index trading_agent_jobs_archive_user_id on trading_agent_jobs_archive (user_id, created_at desc);

create table trading_agent_settings (
    name  text primary key,
    value text not null
);
