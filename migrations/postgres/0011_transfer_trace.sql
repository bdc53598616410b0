-- The W3C trace context (`traceparent`) of the request that created a
-- transfer, so every later step of the transfer, on this gateway and its
-- peers, joins that one trace (see gateway/src/telemetry.rs). NULL when the
-- gateway was not exporting spans then.
ALTER TABLE transfers ADD COLUMN trace_parent TEXT NULL;
