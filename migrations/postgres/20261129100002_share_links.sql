-- Read-only links to a run, made by its owner. Only the SHA-256 of the link's secret is kept.

create table trading_agent_shares (
    id          text        primary key,
    run_id      text        not null,
    user_id     text        not null,
    token_hash  text        not null unique,
    created_at  timestamptz not null,
    seq         bigint      generated always as identity   -- order of creation
);

create index trading_agent_shares_run_id on trading_agent_shares (run_id, seq desc);
