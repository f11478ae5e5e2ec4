-- A run pruned from the archive takes what the application kept of it along: its streamed
-- text, log, tags, outcome, share links and webhook deliveries, and a pruned batch the
-- schedule tick that started it. Without this those rows outlived their run for ever.
-- Runs only archived keep everything: they can still be read.

create index trading_agent_schedule_fires_batch on trading_agent_schedule_fires (batch_id);

create trigger trading_agent_forget_pruned after delete on queue_jobs_archive
begin
    delete from trading_agent_text where run_id = old.job_id;
    delete from trading_agent_log where run_id = old.job_id;
    delete from trading_agent_tags where run_id = old.job_id;
    delete from trading_agent_outcomes where run_id = old.job_id;
    delete from trading_agent_shares where run_id = old.job_id;
    delete from trading_agent_webhook_deliveries where subject = old.job_id;
    delete from trading_agent_schedule_fires where batch_id = old.job_id;
end;
