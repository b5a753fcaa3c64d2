"""The SSRF guard's decisions (switchboard_common.egress), without the network."""

from __future__ import annotations

import ipaddress

import pytest

from switchboard_common.egress import EgressPolicy, UnsafeDestination, parse_rules
from switchboard_common.settings import ServiceSettings


def verdict(policy: EgressPolicy, address: str, port: int = 443, host: str = "") -> str | None:
    return policy.verdict(host or address, ipaddress.ip_address(address), port)


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.9.9.9", "10.0.0.1", "172.31.255.255", "192.168.0.1", "169.254.169.254",
    "100.64.1.1", "0.0.0.0", "192.0.2.1", "198.18.0.1", "240.0.0.1", "255.255.255.255",
    "224.0.0.5", "::1", "::", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1"])
def test_non_public_addresses_are_refused_by_default(address: str) -> None:
    assert verdict(EgressPolicy(), address) is not None


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert verdict(EgressPolicy(), address) is None


def test_allow_entries_match_address_network_port_and_name() -> None:
    policy = EgressPolicy.parse("127.0.0.1:5232,10.0.0.0/8,[::1]:25,caldav.internal:8443")
    assert verdict(policy, "127.0.0.1", 5232) is None
    assert verdict(policy, "127.0.0.1", 4222) is not None  # another port of the same host
    assert verdict(policy, "10.20.30.40", 1) is None
    assert verdict(policy, "::1", 25) is None and verdict(policy, "::1", 26) is not None
    assert verdict(policy, "10.9.9.9", 8443, host="caldav.internal") is None
    assert verdict(policy, "192.168.1.1", 8443, host="CalDAV.Internal.") is None
    assert verdict(policy, "192.168.1.1", 8443, host="other.internal") is not None


def test_deny_wins_over_allow_and_over_public() -> None:
    policy = EgressPolicy.parse(allow="93.184.215.0/24", deny="93.184.215.14")
    assert "platform's own" in (verdict(policy, "93.184.215.14") or "")
    assert verdict(policy, "93.184.215.15") is None


@pytest.mark.parametrize("bad", ["1.2.3.4:99999", "10.0.0.0/33:1", "host:port", "/8"])
def test_malformed_rules_are_refused_at_start_up(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_rules(bad)
    with pytest.raises(ValueError):
        ServiceSettings(outbound_allow=bad)


async def test_names_are_resolved_and_every_address_checked() -> None:
    with pytest.raises(UnsafeDestination, match=r"localhost \(.*\) port 80 is not a public"):
        await EgressPolicy().check("localhost", 80)
    with pytest.raises(UnsafeDestination, match="cannot be resolved"):
        await EgressPolicy().check("no-such-host.invalid", 80)
    with pytest.raises(UnsafeDestination, match="port"):
        await EgressPolicy().check_url("http://127.0.0.1:99999/")
    assert await EgressPolicy().check("93.184.215.14", 443) == [
        ipaddress.ip_address("93.184.215.14")]
    await EgressPolicy.parse("127.0.0.1:5232").check_url("http://127.0.0.1:5232/x")  # no raise
