"""llm_stream: talks to model providers. Consumes `model.requested.<org>` (JetStream), streams
the answer's text as `delta` events on core NATS `turns.events.<org>.<turn>`, and publishes
the outcome (text, stop reason, usage, or a typed provider failure) to `model.completed.<org>`.

Retries: exactly one layer retries, JetStream. The provider SDK never retries
(`max_retries=0`); a retryable provider failure naks the request with a short backoff, and a
crash is covered by redelivery after `ack_wait`. Every retry after partial output is announced
to the client with `turn_retry`, and sequence numbers continue, never restart."""
