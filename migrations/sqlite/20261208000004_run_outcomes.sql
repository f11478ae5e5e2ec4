-- How each completed run turned out, kept so the history can show, filter and sort by it: the
-- horizons as the API writes them (JSON), and, for the longest horizon once the prices reach
-- it, the stock's return and whether the rating's direction was right (1 right, 0 wrong, null
-- for a Hold, a Review, or not yet). A run whose every horizon is reached is settled and never
-- computed again; an unsettled one again at most every few hours.

create table trading_agent_outcomes (
    run_id      text             primary key,
    user_id     text             not null,
    horizons    text             not null,
    return_long double precision,
    right_long  bigint,
    settled     bigint           not null,
    checked_at  bigint           not null
);
create index trading_agent_outcomes_right on trading_agent_outcomes (user_id, right_long);
create index trading_agent_outcomes_return on trading_agent_outcomes (user_id, return_long);
