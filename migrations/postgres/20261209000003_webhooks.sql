-- Signed webhooks: the outbox of their deliveries, one row per event of a run or batch
-- (`subject`), recorded once from the job rows that show it and sent until the receiver takes
-- it or a day and more of retries has passed. `webhook_id` is the Standard Webhooks message id
-- of every attempt. A schedule's webhook given up on is disabled (`webhook_disabled_at`) until
-- it is set again.

create table trading_agent_webhook_deliveries (
    webhook_id      text   primary key,
    subject         text   not null,
    user_id         text   not null,
    event           text   not null,
    url             text   not null,
    body            text   not null,
    schedule_id     text,
    attempts        bigint not null default 0,
    next_attempt_at bigint,
    last_status     bigint,
    last_error      text,
    delivered_at    bigint,
    failed_at       bigint,
    created_at      bigint not null,
    unique (subject, event)
);
create index trading_agent_webhook_deliveries_due on trading_agent_webhook_deliveries (next_attempt_at)
    where next_attempt_at is not null;

alter table trading_agent_schedules add column webhook_disabled_at bigint;

-- The dispatcher reads the runs and batches with a webhook that changed lately.
create index trading_agent_jobs_webhooks on queue_jobs (updated_at)
    where args ->> 'webhook' is not null;
