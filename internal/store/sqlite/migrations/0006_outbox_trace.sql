-- The W3C traceparent of the request that posted a row, so the dispatcher
-- that claims it (in any instance) continues the message's trace; and of
-- the writer of an event, so a socket on another instance that sends it
-- joins that trace. Rows written before have '' (a trace of their own).
ALTER TABLE outbox ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN trace_parent TEXT NOT NULL DEFAULT '';
