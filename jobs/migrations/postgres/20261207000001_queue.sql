-- The job queue (PostgreSQL). A job is a kind and its JSON args, run by the handler registered
-- for its kind; the queue stores its progress, checkpoints and output without reading them.
-- Times are unix epoch milliseconds (UTC) on the database's clock, the one every process
-- shares: `queue_now()`.

create function queue_now() returns bigint language sql volatile as $$
  select (extract(epoch from clock_timestamp()) * 1000)::bigint
$$;

create table queue_jobs (
    id               bigint  generated always as identity primary key,
    job_id           uuid    not null unique,
    kind             text    not null,
    owner            text    not null,
    parent_id        uuid,
    child_limit      integer,
    args             jsonb   not null,
    state            text    not null default 'pending'
                     check (state in ('waiting', 'pending', 'running', 'completed', 'failed', 'timeout', 'cancelled')),
    priority         integer not null default 0,
    attempt          integer not null default 0,
    max_attempts     integer not null default 3,
    lease_owner      text,
    lease_expires_at bigint,
    heartbeat_at     bigint,
    cancel_requested integer not null default 0,
    version          bigint  not null default 1,
    idempotency_key  text,
    args_hash        text,
    timeout_ms       bigint  not null,
    timeout_at       bigint,
    progress         jsonb   not null default '{}',
    checkpoints      jsonb   not null default '{}',
    output           jsonb,
    error            text,
    created_at       bigint  not null,
    started_at       bigint,
    completed_at     bigint,
    updated_at       bigint  not null
);

create index queue_jobs_owner on queue_jobs (owner, created_at desc);
create index queue_jobs_state on queue_jobs (state);
create index queue_jobs_created_at on queue_jobs (created_at desc);
create index queue_jobs_claim on queue_jobs (priority desc, created_at, id) where state = 'pending';
create index queue_jobs_running on queue_jobs (owner) where state = 'running';
create index queue_jobs_lease on queue_jobs (lease_expires_at) where state = 'running';
create index queue_jobs_finished on queue_jobs (completed_at) where state in ('completed', 'failed', 'timeout', 'cancelled');
create index queue_jobs_parent on queue_jobs (parent_id) where parent_id is not null;
create unique index queue_jobs_idempotency on queue_jobs (owner, idempotency_key) where idempotency_key is not null;

create table queue_jobs_archive (
    like queue_jobs,
    archived_at bigint not null,
    primary key (id),
    unique (job_id)
);

create index queue_jobs_archive_owner on queue_jobs_archive (owner, created_at desc);
create index queue_jobs_archive_parent on queue_jobs_archive (parent_id) where parent_id is not null;
create index queue_jobs_archive_archived_at on queue_jobs_archive (archived_at);

-- Every change of a job's version is announced as "<job id> <version>" on queue_jobs_changed,
-- whichever process made it, so that every process's caches and streams learn of it: one
-- notification per statement (a batch writes many jobs), its entries separated by commas, at
-- most 100 to a notification. Heartbeats do not change the version and are not announced.
create function queue_jobs_announce(changes text[]) returns void language plpgsql as $$
declare
  i int := 1;
begin
  while i <= coalesce(array_length(changes, 1), 0) loop
    perform pg_notify('queue_jobs_changed', array_to_string(changes[i:i + 99], ','));
    i := i + 100;
  end loop;
end
$$;

create function queue_jobs_inserted() returns trigger language plpgsql as $$
begin
  perform queue_jobs_announce(array(select job_id::text || ' ' || version::text from new_rows));
  return null;
end
$$;

create function queue_jobs_updated() returns trigger language plpgsql as $$
begin
  perform queue_jobs_announce(array(
    select n.job_id::text || ' ' || n.version::text
    from new_rows n join old_rows o on o.id = n.id
    where n.version <> o.version));
  return null;
end
$$;

create trigger queue_jobs_inserted after insert on queue_jobs
  referencing new table as new_rows for each statement execute function queue_jobs_inserted();
create trigger queue_jobs_updated after update on queue_jobs
  referencing old table as old_rows new table as new_rows for each statement execute function queue_jobs_updated();
