-- Personal API tokens: another way in for the identity that made them. Only the SHA-256 of
-- the secret is kept.

create table trading_agent_tokens (
    id          text        primary key,
    user_id     text        not null,
    name        text        not null,
    token_hash  text        not null unique,
    created_at  timestamptz not null,
    seq         bigint      generated always as identity   -- order of creation
);

create index trading_agent_tokens_user_id on trading_agent_tokens (user_id, seq desc);
