"""Span batching: our defaults (small batches, often) unless the OTEL_BSP_* variables say
otherwise, in which case the SDK reads them."""

from switchboard_common.telemetry import _ours


def test_small_batches_sent_often_by_default() -> None:
    assert _ours({}, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE") == 64
    assert _ours({}, "OTEL_BSP_SCHEDULE_DELAY") == 500


def test_an_operators_variable_wins() -> None:
    env = {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "512", "OTEL_BSP_SCHEDULE_DELAY": "5000"}
    assert _ours(env, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE") is None
    assert _ours(env, "OTEL_BSP_SCHEDULE_DELAY") is None
