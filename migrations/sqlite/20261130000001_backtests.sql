-- Backtests: a grid of ordinary runs (its cells, linked by backtest_id) over symbols × as-of
-- dates. `spec` is the request as validated (JSON: symbols, from, to, everyDays, horizons,
-- modelId, analysts, depth, bearish); `max_running` the cap on its owner's cells running at
-- once, fixed when it was created. Cells are claimed after interactive runs (their priority)
-- and do not count against the per-user limit of interactive runs.

create table trading_agent_backtests (
    id           integer primary key autoincrement,
    backtest_id  text    not null unique,
    user_id      text    not null,
    spec         text    not null,
    cells        integer not null,
    max_running  integer not null,
    cancelled_at integer,
    created_at   integer not null
);

create index trading_agent_backtests_user on trading_agent_backtests (user_id, created_at desc);

alter table trading_agent_jobs add column backtest_id text;
alter table trading_agent_jobs_archive add column backtest_id text;
create index trading_agent_jobs_backtest on trading_agent_jobs (backtest_id) where backtest_id is not null;
-- The claim orders by how many runs each owner has running.
create index trading_agent_jobs_running_user on trading_agent_jobs (user_id) where status = 'running';
