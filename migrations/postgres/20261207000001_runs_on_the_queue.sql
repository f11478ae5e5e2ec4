-- Runs move onto the job queue (`queue_jobs`, created by the queue's own migrations): each run
-- is a job of kind 'analysis' whose args are its request, whose progress document holds its
-- steps, percent, current step and model usage, and whose output is its result. Backtests
-- become parent jobs of kind 'backtest' over their cells. `trading_agent_jobs` and its archive
-- stay as views with the columns they had, the record of runs that operators query and the
-- application reads. Times become unix epoch milliseconds, on the database's clock, as the
-- queue keeps them (`to_timestamp(created_at / 1000.0)` reads one as a timestamp).

create function trading_agent_ms(t timestamptz) returns bigint language sql immutable as $$
  select (extract(epoch from t) * 1000)::bigint
$$;

insert into queue_jobs
    (id, job_id, kind, owner, parent_id, child_limit, args, state, priority, attempt, max_attempts, lease_owner,
     lease_expires_at, heartbeat_at, cancel_requested, version, idempotency_key, args_hash, timeout_ms, timeout_at,
     progress, checkpoints, output, error, created_at, started_at, completed_at, updated_at)
overriding system value
select id, run_id, 'analysis', user_id, backtest_id, null,
       jsonb_strip_nulls(jsonb_build_object('symbol', symbol, 'modelId', model_id, 'analysts', analysts,
                                            'asOf', as_of, 'options', options, 'retryOf', retry_of)),
       status, priority, attempt, max_attempts, lease_owner, trading_agent_ms(lease_expires_at),
       trading_agent_ms(heartbeat_at), cancel_requested::int, version, idempotency_key, request_hash, timeout_ms,
       trading_agent_ms(timeout_at),
       jsonb_build_object('steps', steps, 'percent', progress_percent, 'currentStep', current_step,
                          'usage', jsonb_build_object('calls', llm_calls,
                                                      'tokens', jsonb_build_object('prompt', prompt_tokens,
                                                                                   'completion', completion_tokens),
                                                      'costUsd', cost_usd)),
       checkpoints, result, error, trading_agent_ms(created_at), trading_agent_ms(started_at),
       trading_agent_ms(completed_at), trading_agent_ms(updated_at)
from trading_agent_jobs order by id;

insert into queue_jobs_archive
    (id, job_id, kind, owner, parent_id, child_limit, args, state, priority, attempt, max_attempts, lease_owner,
     lease_expires_at, heartbeat_at, cancel_requested, version, idempotency_key, args_hash, timeout_ms, timeout_at,
     progress, checkpoints, output, error, created_at, started_at, completed_at, updated_at, archived_at)
select id, run_id, 'analysis', user_id, backtest_id, null,
       jsonb_strip_nulls(jsonb_build_object('symbol', symbol, 'modelId', model_id, 'analysts', analysts,
                                            'asOf', as_of, 'options', options, 'retryOf', retry_of)),
       status, priority, attempt, max_attempts, lease_owner, trading_agent_ms(lease_expires_at),
       trading_agent_ms(heartbeat_at), cancel_requested::int, version, idempotency_key, request_hash, timeout_ms,
       trading_agent_ms(timeout_at),
       jsonb_build_object('steps', steps, 'percent', progress_percent, 'currentStep', current_step,
                          'usage', jsonb_build_object('calls', llm_calls,
                                                      'tokens', jsonb_build_object('prompt', prompt_tokens,
                                                                                   'completion', completion_tokens),
                                                      'costUsd', cost_usd)),
       checkpoints, result, error, trading_agent_ms(created_at), trading_agent_ms(started_at),
       trading_agent_ms(completed_at), trading_agent_ms(updated_at), trading_agent_ms(archived_at)
from trading_agent_jobs_archive;

-- New jobs are numbered after every run kept with its id, archived ones included (the janitor
-- moves rows to the archive with their ids).
select setval(pg_get_serial_sequence('queue_jobs', 'id'),
              greatest(coalesce((select max(id) from queue_jobs), 0), coalesce((select max(id) from queue_jobs_archive), 0)) + 1,
              false);

-- A backtest waits while any of its cells is active, and otherwise ended when its last cell did.
insert into queue_jobs
    (job_id, kind, owner, child_limit, args, state, priority, max_attempts, cancel_requested, timeout_ms,
     created_at, completed_at, updated_at)
select b.backtest_id, 'backtest', b.user_id, b.max_running, b.spec,
       case when b.cancelled_at is not null then 'cancelled'
            when exists (select 1 from trading_agent_jobs c
                         where c.backtest_id = b.backtest_id and c.status in ('pending', 'running')) then 'waiting'
            else 'completed' end,
       -10, 3, (b.cancelled_at is not null)::int, 600000, trading_agent_ms(b.created_at),
       case when b.cancelled_at is not null then trading_agent_ms(b.cancelled_at)
            when exists (select 1 from trading_agent_jobs c
                         where c.backtest_id = b.backtest_id and c.status in ('pending', 'running')) then null
            else trading_agent_ms(coalesce(
                     (select max(completed_at) from trading_agent_jobs c where c.backtest_id = b.backtest_id),
                     (select max(completed_at) from trading_agent_jobs_archive c where c.backtest_id = b.backtest_id),
                     b.created_at)) end,
       trading_agent_ms(b.created_at)
from trading_agent_backtests b order by b.id;

drop table trading_agent_jobs;
drop table trading_agent_jobs_archive;
drop table trading_agent_backtests;
drop function trading_agent_runs_notify();
drop function trading_agent_jobs_touch();

-- Tokens and share links keep their times as the rest does.
alter table trading_agent_tokens alter column created_at type bigint using trading_agent_ms(created_at);
alter table trading_agent_shares alter column created_at type bigint using trading_agent_ms(created_at);
drop function trading_agent_ms(timestamptz);

create view trading_agent_jobs as
select id, job_id as run_id, owner as user_id,
       args ->> 'symbol' as symbol, args ->> 'modelId' as model_id, args -> 'analysts' as analysts,
       (args ->> 'asOf')::date as as_of, state as status, progress ->> 'currentStep' as current_step,
       coalesce((progress ->> 'percent')::smallint, 0) as progress_percent, coalesce(progress -> 'steps', '[]') as steps,
       checkpoints, output as result, error, priority, attempt, max_attempts, lease_owner, lease_expires_at,
       heartbeat_at, cancel_requested, version, (args ->> 'retryOf')::uuid as retry_of, idempotency_key,
       args_hash as request_hash, timeout_ms, timeout_at,
       coalesce((progress -> 'usage' ->> 'calls')::bigint, 0) as llm_calls,
       coalesce((progress -> 'usage' -> 'tokens' ->> 'prompt')::bigint, 0) as prompt_tokens,
       coalesce((progress -> 'usage' -> 'tokens' ->> 'completion')::bigint, 0) as completion_tokens,
       started_at, completed_at, created_at, updated_at, completed_at - started_at as duration_ms,
       coalesce(args -> 'options', '{}') as options,
       coalesce((progress -> 'usage' ->> 'costUsd')::double precision, 0) as cost_usd,
       parent_id as backtest_id
from queue_jobs where kind = 'analysis';

create view trading_agent_jobs_archive as
select id, job_id as run_id, owner as user_id,
       args ->> 'symbol' as symbol, args ->> 'modelId' as model_id, args -> 'analysts' as analysts,
       (args ->> 'asOf')::date as as_of, state as status, progress ->> 'currentStep' as current_step,
       coalesce((progress ->> 'percent')::smallint, 0) as progress_percent, coalesce(progress -> 'steps', '[]') as steps,
       checkpoints, output as result, error, priority, attempt, max_attempts, lease_owner, lease_expires_at,
       heartbeat_at, cancel_requested, version, (args ->> 'retryOf')::uuid as retry_of, idempotency_key,
       args_hash as request_hash, timeout_ms, timeout_at,
       coalesce((progress -> 'usage' ->> 'calls')::bigint, 0) as llm_calls,
       coalesce((progress -> 'usage' -> 'tokens' ->> 'prompt')::bigint, 0) as prompt_tokens,
       coalesce((progress -> 'usage' -> 'tokens' ->> 'completion')::bigint, 0) as completion_tokens,
       started_at, completed_at, created_at, updated_at, completed_at - started_at as duration_ms,
       coalesce(args -> 'options', '{}') as options,
       coalesce((progress -> 'usage' ->> 'costUsd')::double precision, 0) as cost_usd,
       parent_id as backtest_id, archived_at
from queue_jobs_archive where kind = 'analysis';

create index trading_agent_jobs_model on queue_jobs ((args ->> 'modelId'), completed_at desc)
    where kind = 'analysis' and state = 'completed';
create index trading_agent_jobs_spending on queue_jobs (owner, updated_at) where kind = 'analysis';
