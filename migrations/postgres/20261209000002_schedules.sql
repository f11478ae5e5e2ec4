-- Schedules: a user's named watchlist, started as a batch on every tick of a cron expression
-- read in a time zone. `next_fire_at` is the next tick (epoch milliseconds; null while paused);
-- the process that moves it on records the tick in `trading_agent_schedule_fires` in the same
-- transaction, so of many processes one takes each tick. A tick's batch is started after, with
-- the tick as its idempotency key, and `started` says it was: a tick taken by a process that
-- stopped before starting its batch is started by another.

create table trading_agent_schedules (
    schedule_id  text    primary key,
    user_id      text    not null,
    name         text    not null,
    cron         text    not null,
    timezone     text    not null,
    request      text    not null,
    paused       bigint  not null default 0,
    next_fire_at bigint,
    created_at   bigint  not null,
    updated_at   bigint  not null
);
create index trading_agent_schedules_user on trading_agent_schedules (user_id, created_at);
create index trading_agent_schedules_due on trading_agent_schedules (next_fire_at) where next_fire_at is not null;

create table trading_agent_schedule_fires (
    schedule_id text   not null,
    tick_at     bigint not null,
    fired_at    bigint not null,
    batch_id    text   not null,
    missed      bigint not null default 0,
    started     bigint not null default 0,
    error       text,
    primary key (schedule_id, tick_at)
);
create index trading_agent_schedule_fires_unstarted on trading_agent_schedule_fires (fired_at) where started = 0;
