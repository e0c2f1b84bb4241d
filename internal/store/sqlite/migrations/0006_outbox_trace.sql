-- The W3C traceparent of the request that posted a row, so the dispatcher
-- that claims it (in any instance) continues the message's trace. Rows
-- written before have '' and start a trace of their own.
ALTER TABLE outbox ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';
