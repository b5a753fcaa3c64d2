"""REST: skills at every tier, and the resolution answered by a real context service
(in-process) over NATS, cache invalidation included."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from faststream import FastStream

from switchboard_context.main import build_app
from switchboard_context.settings import Settings as ContextSettings
from tests.connected.gateway.support import Gateway, GatewayFactory, api

pytestmark = pytest.mark.connected


@pytest.fixture
async def context(gateway: Gateway, nats_url: str, valkey_url: str
                  ) -> AsyncIterator[FastStream]:
    app = build_app(ContextSettings(nats_url=nats_url, valkey_url=valkey_url,
                                    memory_search=False, connect_timeout_s=5.0,
                                    shutdown_grace_s=1.0))
    await app.start()
    yield app
    await app.stop()


async def test_tier_endpoints_validate_and_enforce_who_writes(gateway: Gateway, org: str
                                                              ) -> None:
    async with api(gateway, org, "boss") as boss, api(gateway, org, "ana") as ana, \
            api(gateway, org, "ben") as ben:
        for c in (boss, ana, ben):
            await c.get("/me")
        assert (await ana.get("/skills/system")).json() == {
            "tier": "system", "subject_id": None, "skills": {}}
        assert (await ana.put("/skills/system", json={"email_tone": "x"})).status_code == 403
        ok = await boss.put("/skills/system", json={"email_tone": "crisp"})
        assert ok.json() == {"tier": "system", "subject_id": None,
                             "skills": {"email_tone": "crisp"}}
        bad = await boss.put("/skills/system", json={"autonomy": {"default": {
            "auto_execute": 2}}})
        assert bad.status_code == 422
        assert bad.json()["detail"].startswith("autonomy.default.auto_execute: ")
        assert (await boss.put("/skills/system", json=["a"])).status_code == 422

        assert (await ana.put("/skills/users/ana", json={"email_tone": "warm"})
                ).status_code == 200
        assert (await ben.get("/skills/users/ana")).status_code == 403
        assert (await ben.put("/skills/users/ana", json={})).status_code == 403
        assert (await boss.get("/skills/users/ana")).json()["skills"] == {"email_tone": "warm"}
        assert (await boss.get("/skills/users/nobody")).status_code == 404
        typo = await ana.put("/skills/users/ana", json={"prefrences": {}})
        assert typo.status_code == 422 and typo.json()["detail"].startswith("prefrences: ")

        await ana.post("/clients", json={"id": "sarah", "name": "Sarah"})
        bad_client = await ana.put("/clients/sarah/skills", json={"enabled_tools": "all"})
        assert bad_client.status_code == 422
        assert bad_client.json()["detail"].startswith("enabled_tools: ")
        assert (await ana.put("/clients/sarah/skills", json={"email_tone": "brief"})
                ).status_code == 200
        assert (await ana.get("/clients/sarah/skills")).json()["skills"] == {
            "email_tone": "brief"}
        assert (await ana.delete("/clients/sarah/skills")).status_code == 204
        assert (await ana.get("/clients/sarah/skills")).json()["skills"] == {}
        assert (await boss.delete("/skills/system")).status_code == 204
        assert (await ana.delete("/skills/users/ana")).status_code == 204


async def test_resolved_is_503_when_no_context_replica_answers(
        gateway_factory: GatewayFactory, org: str) -> None:
    async with gateway_factory(skills_resolve_timeout_s=0.3) as gw, \
            api(gw, org, "ana") as ana:
        await ana.post("/clients", json={"id": "sarah", "name": "Sarah"})
        r = await ana.get("/clients/sarah/skills/resolved")
        assert r.status_code == 503
        assert "context service" in r.json()["detail"]


async def test_resolved_shows_every_tier_and_changes_are_seen_at_once(
        gateway: Gateway, context: FastStream, org: str) -> None:
    async with api(gateway, org, "boss") as boss, api(gateway, org, "ana") as ana, \
            api(gateway, org, "ben") as ben:
        for c in (boss, ana, ben):
            await c.get("/me")
        await boss.put("/skills/system", json={"email_tone": "org tone"})
        await ana.put("/skills/users/ana", json={"preferences": {"style": "bullet points"},
                                                 "models": {"max_tokens": 700}})
        await boss.post("/templates", json={"id": "exec", "name": "Exec", "skills": {
            "autonomy": {"mode": "assist"}, "preferences": {"cc": "cc the CFO"}}})
        await ana.post("/clients", json={"id": "sarah", "name": "Sarah", "template_id": "exec"})
        await ana.put("/clients/sarah/skills", json={
            "preferences": {"meetings": "mornings only", "cc": None}})

        first = await ana.get("/clients/sarah/skills/resolved")
        assert first.status_code == 200, first.text
        body = first.json()
        assert (body["user_id"], body["client_id"]) == ("ana", "sarah")
        assert body["skills"]["preferences"] == {"style": "bullet points",
                                                 "meetings": "mornings only"}
        assert body["skills"]["email_tone"] == "org tone"
        assert body["skills"]["autonomy"]["mode"] == "assist"
        assert body["skills"]["models"]["max_tokens"] == 700
        prov = body["provenance"]
        assert prov["email_tone"] == "system"
        assert prov["preferences.style"] == "user"
        assert prov["models.max_tokens"] == "user"
        assert prov["autonomy.mode"] == "template"
        assert prov["preferences.meetings"] == "client"
        assert "preferences.cc" not in prov  # removed by the client's explicit null
        assert prov["autonomy.default.auto_execute"] == "system"

        # Each write is visible in the very next resolution: the cache was dropped over NATS.
        await ana.put("/clients/sarah/skills", json={"preferences": {"meetings": "after 3pm"}})
        now = (await ana.get("/clients/sarah/skills/resolved")).json()
        assert now["skills"]["preferences"]["meetings"] == "after 3pm"
        assert now["skills"]["preferences"]["cc"] == "cc the CFO"
        assert now["provenance"]["preferences.cc"] == "template"
        await boss.patch("/templates/exec", json={"skills": {"autonomy": {"mode": "automate"}}})
        now = (await ana.get("/clients/sarah/skills/resolved")).json()
        assert now["skills"]["autonomy"]["mode"] == "automate"
        await ana.patch("/clients/sarah", json={"template_id": None})
        now = (await ana.get("/clients/sarah/skills/resolved")).json()
        assert now["skills"]["autonomy"]["mode"] == "suggest"
        assert now["provenance"]["autonomy.mode"] == "system"

        # Resolution is per (caller, client): the admin has no user-tier preferences.
        admins = (await boss.get("/clients/sarah/skills/resolved")).json()
        assert "style" not in admins["skills"]["preferences"]
        assert (await ben.get("/clients/sarah/skills/resolved")).status_code == 403
