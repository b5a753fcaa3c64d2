"""Shared settings: NATS_URL with several servers, stream replicas from the environment."""

import pytest
from nats.aio.client import Client as NatsClient
from pydantic import ValidationError

from switchboard_common.settings import ServiceSettings, nats_servers
from switchboard_common.streams import ALL_STREAMS

CLUSTER = "nats://nats-0.nats:4222, nats://nats-1.nats:4222,tls://nats-2.nats:4222"


def test_several_servers_become_a_list_nats_py_accepts() -> None:
    servers = nats_servers(CLUSTER)
    assert servers == ["nats://nats-0.nats:4222", "nats://nats-1.nats:4222",
                       "tls://nats-2.nats:4222"]
    client = NatsClient()
    client._setup_server_pool(servers)  # what connect() does with `servers`; raises if refused
    assert [s.uri.hostname for s in client._server_pool] == ["nats-0.nats", "nats-1.nats",
                                                             "nats-2.nats"]


def test_the_joined_string_is_what_nats_py_refuses() -> None:
    # The crash-loop: handing nats-py the comma-joined string instead of the list.
    with pytest.raises(Exception, match="invalid connect url"):
        NatsClient()._setup_server_pool(CLUSTER.replace(" ", ""))


@pytest.mark.parametrize("url", ["http://nats:4222", "nats://:4222", "nats://nats:notaport",
                                 "nats://a:4222,,nats://b:4222"])
def test_bad_nats_urls_are_refused_at_start_up(url: str) -> None:
    with pytest.raises(ValidationError):
        ServiceSettings(nats_url=url)


def test_stream_replicas_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().stream_replicas == 1
    monkeypatch.setenv("NATS_STREAM_REPLICAS", "3")
    monkeypatch.setenv("NATS_URL", CLUSTER)
    settings = ServiceSettings()
    assert settings.stream_replicas == 3
    assert all(spec.config(settings.stream_replicas).num_replicas == 3 for spec in ALL_STREAMS)
    monkeypatch.setenv("NATS_STREAM_REPLICAS", "0")
    with pytest.raises(ValidationError):
        ServiceSettings()


@pytest.mark.parametrize("password", ["2026-01-01x", "-abc", "a#b", "a b", "a,b"])
def test_nats_passwords_nats_server_would_misread_are_refused(password: str) -> None:
    production = {"environment": "production", "nats_user": "context",
                  "valkey_password": "v" * 16}
    with pytest.raises(ValidationError, match="letters and digits only"):
        ServiceSettings(nats_password=password, **production)
    assert ServiceSettings(nats_password="n" + "0a" * 12, **production).nats_password
    assert ServiceSettings(nats_password=password).nats_password  # development: inline, quoted
