-- A backtest's cells are read from the archive too, once the janitor has moved them there.
create index trading_agent_jobs_archive_backtest on trading_agent_jobs_archive (backtest_id) where backtest_id is not null;
