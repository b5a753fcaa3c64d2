"""FastStream's per-subject metrics are labelled by subject family: org, client and turn ids
never reach a metrics endpoint (the gateway serves its own on the public port) and never make
one series per org or turn."""

from __future__ import annotations

from nats.aio.msg import Msg

from switchboard_common.metrics import _provider, subject_family


def test_ids_after_the_family_become_a_wildcard() -> None:
    assert subject_family("turns.requested.acme") == "turns.requested.*"
    assert subject_family("events.ingest.acme.sarah") == "events.ingest.*"
    assert subject_family("turns.events.acme.t-123") == "turns.events.*"
    assert subject_family("dlq.SB_TURNS.context") == "dlq.SB_TURNS.*"
    assert subject_family("skills.changed") == "skills.changed"
    assert subject_family("ping") == "ping"


def test_the_provider_relabels_what_is_consumed_and_published() -> None:
    provider = _provider(Msg(_client=None, subject="turns.requested.acme"))  # type: ignore[arg-type]
    assert provider is not None and _provider(None) is not None

    class Cmd:
        destination = "model.requested.acme"

    assert provider.get_publish_destination_name_from_cmd(Cmd()) == "model.requested.*"  # type: ignore[arg-type]
