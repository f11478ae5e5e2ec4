-- The history as a tool: its owner's tags on runs, and the indexes its filters page through
-- (one user's runs newest first, and per symbol, model and rating, each in keyset order).

create table trading_agent_tags (
    run_id   text    not null,
    user_id  text    not null,
    tag      text    not null,
    ordinal  integer not null,
    primary key (run_id, tag)
);
create index trading_agent_tags_user on trading_agent_tags (user_id, tag, run_id);

create index trading_agent_jobs_history on queue_jobs (owner, created_at desc, id desc)
    where kind = 'analysis' and parent_id is null;
create index trading_agent_jobs_history_symbol on queue_jobs (owner, (args ->> 'symbol'), created_at desc, id desc)
    where kind = 'analysis' and parent_id is null;
create index trading_agent_jobs_history_model on queue_jobs (owner, (args ->> 'modelId'), created_at desc, id desc)
    where kind = 'analysis' and parent_id is null;
create index trading_agent_jobs_history_rating on queue_jobs (owner, (output ->> 'rating'), created_at desc, id desc)
    where kind = 'analysis' and parent_id is null;
create index trading_agent_jobs_archive_history on queue_jobs_archive (owner, created_at desc, id desc)
    where kind = 'analysis' and parent_id is null;
