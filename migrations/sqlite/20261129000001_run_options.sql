-- Research depth, a second model for the managers and a budget, as one JSON object per run
-- (`{"depth":"deep","rounds":3,"deepModelId":…,"maxCostUsd":…,"maxTokens":…}`; `{}` is a
-- quick run without a budget), and what the run's model calls cost so far in US dollars.

alter table trading_agent_jobs add column options text not null default '{}';
alter table trading_agent_jobs add column cost_usd real not null default 0;
alter table trading_agent_jobs_archive add column options text not null default '{}';
alter table trading_agent_jobs_archive add column cost_usd real not null default 0;
