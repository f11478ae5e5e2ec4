-- Every change of a run's version is announced as "<run id> <version>" on the
-- trading_agent_runs channel, whichever process made it, so that every process's progress
-- cache and live streams learn of it. Heartbeats do not change the version and are not sent.
create function trading_agent_runs_notify() returns trigger language plpgsql as $$
begin
  perform pg_notify('trading_agent_runs', new.run_id::text || ' ' || new.version::text);
  return null;
end
$$;

create trigger trading_agent_runs_notify
  after insert or update of version on trading_agent_jobs
  for each row execute function trading_agent_runs_notify();
