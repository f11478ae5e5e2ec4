-- Batches: runs of many symbols started together, children of a parent job of kind 'batch'
-- as a backtest's cells are of theirs, each carrying the batch's id in its args. Unlike cells,
-- they are runs of the history: `backtest_id` names a parent only when the run is not a
-- batch's, and the new `batch_id` names the batch. The history's indexes cover every run whose
-- `backtest_id` is null. The views also give `parent_id` and `args` as they are, because a
-- search must name the indexes' condition on the table's own columns for SQLite to use them (an
-- expression of the view's, such as `backtest_id`, is not matched against an index's).

drop view trading_agent_jobs;
drop view trading_agent_jobs_archive;

create view trading_agent_jobs as
select id, job_id as run_id, owner as user_id,
       args ->> 'symbol' as symbol, args ->> 'modelId' as model_id, args -> 'analysts' as analysts,
       args ->> 'asOf' as as_of, state as status, progress ->> 'currentStep' as current_step,
       coalesce(progress ->> 'percent', 0) as progress_percent, coalesce(progress -> 'steps', '[]') as steps,
       checkpoints, output as result, error, priority, attempt, max_attempts, lease_owner, lease_expires_at,
       heartbeat_at, cancel_requested, version, args ->> 'retryOf' as retry_of, idempotency_key,
       args_hash as request_hash, timeout_ms, timeout_at,
       coalesce(progress -> 'usage' ->> 'calls', 0) as llm_calls,
       coalesce(progress -> 'usage' -> 'tokens' ->> 'prompt', 0) as prompt_tokens,
       coalesce(progress -> 'usage' -> 'tokens' ->> 'completion', 0) as completion_tokens,
       started_at, completed_at, created_at, updated_at, completed_at - started_at as duration_ms,
       coalesce(args -> 'options', '{}') as options, coalesce(progress -> 'usage' ->> 'costUsd', 0.0) as cost_usd,
       case when args ->> 'batchId' is null then parent_id end as backtest_id,
       args ->> 'batchId' as batch_id, parent_id, args
from queue_jobs where kind = 'analysis';

create view trading_agent_jobs_archive as
select id, job_id as run_id, owner as user_id,
       args ->> 'symbol' as symbol, args ->> 'modelId' as model_id, args -> 'analysts' as analysts,
       args ->> 'asOf' as as_of, state as status, progress ->> 'currentStep' as current_step,
       coalesce(progress ->> 'percent', 0) as progress_percent, coalesce(progress -> 'steps', '[]') as steps,
       checkpoints, output as result, error, priority, attempt, max_attempts, lease_owner, lease_expires_at,
       heartbeat_at, cancel_requested, version, args ->> 'retryOf' as retry_of, idempotency_key,
       args_hash as request_hash, timeout_ms, timeout_at,
       coalesce(progress -> 'usage' ->> 'calls', 0) as llm_calls,
       coalesce(progress -> 'usage' -> 'tokens' ->> 'prompt', 0) as prompt_tokens,
       coalesce(progress -> 'usage' -> 'tokens' ->> 'completion', 0) as completion_tokens,
       started_at, completed_at, created_at, updated_at, completed_at - started_at as duration_ms,
       coalesce(args -> 'options', '{}') as options, coalesce(progress -> 'usage' ->> 'costUsd', 0.0) as cost_usd,
       case when args ->> 'batchId' is null then parent_id end as backtest_id, archived_at,
       args ->> 'batchId' as batch_id, parent_id, args
from queue_jobs_archive where kind = 'analysis';

drop index trading_agent_jobs_history;
drop index trading_agent_jobs_history_symbol;
drop index trading_agent_jobs_history_model;
drop index trading_agent_jobs_history_rating;
drop index trading_agent_jobs_archive_history;
create index trading_agent_jobs_history on queue_jobs (owner, created_at desc, id desc)
    where kind = 'analysis' and (case when args ->> 'batchId' is null then parent_id end) is null;
create index trading_agent_jobs_history_symbol on queue_jobs (owner, (args ->> 'symbol'), created_at desc, id desc)
    where kind = 'analysis' and (case when args ->> 'batchId' is null then parent_id end) is null;
create index trading_agent_jobs_history_model on queue_jobs (owner, (args ->> 'modelId'), created_at desc, id desc)
    where kind = 'analysis' and (case when args ->> 'batchId' is null then parent_id end) is null;
create index trading_agent_jobs_history_rating on queue_jobs (owner, (output ->> 'rating'), created_at desc, id desc)
    where kind = 'analysis' and (case when args ->> 'batchId' is null then parent_id end) is null;
create index trading_agent_jobs_archive_history on queue_jobs_archive (owner, created_at desc, id desc)
    where kind = 'analysis' and (case when args ->> 'batchId' is null then parent_id end) is null;
