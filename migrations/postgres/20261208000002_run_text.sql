-- The text the models of a run write, step by step, in the pieces the worker stored it in
-- (coalesced: about every 250 ms or 2 KB per step, not per token). `part` counts a step's
-- pieces from 0; `id` orders all pieces of a run as they were written (one writer per run).
-- A step's pieces, joined in `part` order, are its text. Times are unix epoch milliseconds.

create table trading_agent_text (
    id          bigint  generated always as identity primary key,
    run_id      text    not null,
    step        text    not null,
    part        integer not null,
    delta       text    not null,
    created_at  bigint  not null,
    unique (run_id, step, part)
);

create index trading_agent_text_run_id on trading_agent_text (run_id, id);
