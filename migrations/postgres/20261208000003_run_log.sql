-- A run's log: one row per event (data read, model call, retry, stall, cancellation, end),
-- `entry` the event as the API shows it (JSON). A model call's figures are columns too, for
-- the operators' statistics of first-output latency and writing pace per model. `id` orders
-- a run's events as they were written. Times are unix epoch milliseconds.

create table trading_agent_log (
    id               bigint  generated always as identity primary key,
    run_id           text    not null,
    created_at       bigint  not null,
    kind             text    not null,
    entry            text    not null,
    model            text,
    first_output_ms  bigint,
    latency_ms       bigint,
    tokens_out       bigint
);

create index trading_agent_log_run_id on trading_agent_log (run_id, id);
create index trading_agent_log_calls on trading_agent_log (created_at) where kind = 'call';
