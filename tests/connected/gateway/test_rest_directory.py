"""REST: users, clients, templates and the access rules, against real NATS + Valkey."""

from __future__ import annotations

import pytest

from tests.connected.gateway.support import Gateway, api

pytestmark = pytest.mark.connected


async def test_nobody_is_created_implicitly_and_admins_add_members(gateway: Gateway, org: str
                                                                   ) -> None:
    async with api(gateway, org, "boss") as boss, api(gateway, org, "ana") as ana, \
            api(gateway, f"{org}new", "first") as first:
        me = (await boss.get("/me")).json()
        assert (me["org_id"], me["user"]["id"], me["user"]["role"]) == (org, "boss", "admin")
        assert (await ana.get("/me")).json()["user"]["role"] == "member"
        # The first caller of a new org is nobody, not its admin.
        stranger = await first.get("/me")
        assert stranger.status_code == 401 and "no user 'first'" in stranger.json()["detail"]
        refused = await ana.post("/users", json={"id": "zoe"})
        assert refused.status_code == 403 and "admin" in refused.json()["detail"]
        added = await boss.post("/users", json={"id": "zoe", "display_name": "Zoe"})
        assert added.status_code == 201 and added.json()["role"] == "member"
        assert (await boss.post("/users", json={"id": "zoe"})).status_code == 409
        bad = await boss.post("/users", json={"id": "not an id"})
        assert bad.status_code == 422 and bad.json()["detail"].startswith("id: ")
        assert [u["id"] for u in (await ana.get("/users")).json()] == [
            "ana", "ben", "boss", "intruder", "va1", "va2", "zoe"]


async def test_client_crud_assignment_and_visibility(gateway: Gateway, org: str,
                                                     memory_service: None) -> None:
    async with api(gateway, org, "boss") as boss, api(gateway, org, "ana") as ana, \
            api(gateway, org, "ben") as ben:
        for c in (boss, ana, ben):
            await c.get("/me")
        assert (await boss.post("/templates", json={"id": "exec", "name": "Executive"})
                ).status_code == 201

        created = await ana.post("/clients", json={"id": "sarah", "name": "Sarah Chen",
                                                   "template_id": "exec"})
        assert created.status_code == 201
        assert created.json()["assigned_users"] == ["ana"]
        assert (await ana.post("/clients", json={"id": "sarah", "name": "x"})
                ).status_code == 409
        generated = (await ben.post("/clients", json={"name": "John Park"})).json()
        john = generated["id"]

        # 422 names the field.
        no_template = await ana.post("/clients", json={"name": "X", "template_id": "nope"})
        assert no_template.status_code == 422
        assert no_template.json()["detail"] == "template_id: no template 'nope' in this org"
        empty = await ana.post("/clients", json={"name": ""})
        assert empty.status_code == 422 and empty.json()["detail"].startswith("name: ")
        assert empty.json()["errors"][0]["loc"] == ["body", "name"]

        # Members see their own clients; the admin sees all.
        assert [c["id"] for c in (await ana.get("/clients")).json()] == ["sarah"]
        assert [c["id"] for c in (await ben.get("/clients")).json()] == [john]
        assert sorted(c["id"] for c in (await boss.get("/clients")).json()) == sorted(
            ["sarah", john])

        patched = await ana.patch("/clients/sarah", json={"name": "Sarah C.",
                                                          "template_id": None})
        assert patched.status_code == 200
        assert (patched.json()["name"], patched.json()["template_id"]) == ("Sarah C.", None)
        assert (await ana.patch("/clients/sarah", json={"template_id": "nope"})
                ).status_code == 422

        # Assignment: only someone with access; assignees must exist.
        assert (await ben.put("/clients/sarah/assignees", json={"user_ids": ["ben"]})
                ).status_code == 403
        unknown = await ana.put("/clients/sarah/assignees", json={"user_ids": ["ana", "zed"]})
        assert unknown.status_code == 422
        assert unknown.json()["detail"] == "user_ids.1: no user 'zed' in this org"
        assert (await ana.post("/clients/sarah/assignees/zed")).status_code == 404
        both = await ana.post("/clients/sarah/assignees/ben")
        assert both.json()["assigned_users"] == ["ana", "ben"]
        assert (await ben.get("/clients/sarah")).status_code == 200
        only_ben = await ana.put("/clients/sarah/assignees", json={"user_ids": ["ben"]})
        assert only_ben.json()["assigned_users"] == ["ben"]
        assert (await ana.get("/clients/sarah")).status_code == 403
        assert (await ben.delete("/clients/sarah/assignees/ben")).json()["assigned_users"] == []

        # Delete: then unknown to the admin (404), refused to a member (403).
        assert (await boss.delete("/clients/sarah")).status_code == 204
        assert (await boss.get("/clients/sarah")).status_code == 404
        assert (await ana.get("/clients/sarah")).status_code == 403
        assert (await boss.patch("/clients/sarah", json={"name": "x"})).status_code == 404


async def test_unassigned_and_other_org_clients_are_403_and_leak_nothing(
        gateway: Gateway, org: str) -> None:
    other = org + "x"
    async with api(gateway, org, "boss") as boss, api(gateway, org, "ana") as ana, \
            api(gateway, org, "ben") as ben, api(gateway, other, "mallory") as mallory, \
            api(gateway, other, "eve") as eve:
        for c in (boss, ana, ben, mallory, eve):
            await c.get("/me")
        await ana.post("/clients", json={"id": "sarah", "name": "Sarah Chen Secret"})
        await ana.put("/clients/sarah/skills",
                      json={"preferences": {"meetings": "mornings only, very private"}})
        probes = [("GET", "/clients/sarah"), ("PATCH", "/clients/sarah"),
                  ("DELETE", "/clients/sarah"), ("GET", "/clients/sarah/skills"),
                  ("PUT", "/clients/sarah/skills"), ("GET", "/clients/sarah/skills/resolved"),
                  ("GET", "/clients/sarah/conversations"), ("GET", "/clients/sarah/usage"),
                  ("PUT", "/clients/sarah/assignees"), ("POST", "/clients/sarah/assignees/ben")]
        bodies = {"PATCH": {"name": "pwned"}, "PUT": {"user_ids": ["ben"]}}
        for who in (ben, eve):  # a colleague, a member of another org
            for method, path in probes:
                body = ({} if path.endswith("/skills") else bodies.get(method))
                r = await who.request(method, path, json=body)
                assert r.status_code == 403, (method, path, r.text)
                assert r.json()["detail"] == "client 'sarah' is not assigned to you"
                assert "Sarah Chen" not in r.text and "mornings" not in r.text
        # A member cannot tell that from an id that exists nowhere.
        ghost = await ben.get("/clients/ghost")
        assert ghost.status_code == 403
        # The other org's admin looks inside their own org only: not found.
        other_admin = await mallory.get("/clients/sarah")
        assert other_admin.status_code == 404 and "Sarah Chen" not in other_admin.text
        assert (await ana.get("/clients/sarah")).json()["name"] == "Sarah Chen Secret"


async def test_templates_crud_and_validation(gateway: Gateway, org: str) -> None:
    async with api(gateway, org, "boss") as boss, api(gateway, org, "ana") as ana:
        await boss.get("/me")
        bad = await boss.post("/templates", json={"name": "T", "skills": {
            "autonomy": {"mode": "yolo"}}})
        assert bad.status_code == 422
        assert bad.json()["detail"].startswith("skills.autonomy.mode: Input should be")
        typo = await boss.post("/templates", json={"name": "T", "skills": {"emial_tone": "x"}})
        assert typo.status_code == 422 and "skills.emial_tone" in typo.json()["detail"]

        skills = {"email_tone": "formal", "preferences": {"cfo": "cc the CFO"}}
        assert (await ana.post("/templates", json={"name": "T"})).status_code == 403
        made = await boss.post("/templates", json={"id": "sw", "name": "Software",
                                                   "skills": skills})
        assert made.status_code == 201 and made.json()["skills"] == skills
        assert (await ana.get("/templates/sw")).json()["name"] == "Software"
        assert [t["id"] for t in (await ana.get("/templates")).json()] == ["sw"]
        assert (await ana.get("/templates/nope")).status_code == 404
        assert (await ana.patch("/templates/sw", json={"name": "x"})).status_code == 403
        renamed = await boss.patch("/templates/sw", json={"name": "Software v2"})
        assert renamed.json() == {**made.json(), "name": "Software v2"}
        assert (await boss.patch("/templates/sw", json={"skills": {"models": {
            "max_tokens": 0}}})).json()["detail"].startswith("skills.models.max_tokens: ")

        await ana.post("/clients", json={"id": "c1", "name": "C", "template_id": "sw"})
        in_use = await boss.delete("/templates/sw")
        assert in_use.status_code == 409
        await ana.patch("/clients/c1", json={"template_id": None})
        assert (await boss.delete("/templates/sw")).status_code == 204
        assert (await boss.delete("/templates/sw")).status_code == 404


async def test_client_connections_are_admin_only_and_masked(gateway: Gateway, org: str) -> None:
    async with api(gateway, org, "boss") as boss, api(gateway, org, "ana") as ana:
        await boss.get("/me")
        await ana.post("/clients", json={"id": "sarah", "name": "Sarah"})
        await boss.put("/clients/sarah/assignees", json={"user_ids": ["ana"]})
        # A public address literal: the SSRF check resolves names, and tests have no DNS.
        body = {"smtp": {"host": "93.184.215.14", "port": 587, "username": "sarah",
                         "password": "hunter2", "mail_from": "assistant@sarah.example"}}
        assert (await ana.put("/clients/sarah/connections", json=body)).status_code == 403
        saved = await boss.put("/clients/sarah/connections", json=body)
        assert saved.status_code == 200 and "hunter2" not in saved.text
        read = (await ana.get("/clients/sarah/connections")).json()
        assert read["smtp"]["host"] == "93.184.215.14"
        assert read["smtp"]["password"] == "**********" and read["caldav"] is None
        bad = await boss.put("/clients/sarah/connections", json={"caldav": {"url": "ftp://x"}})
        assert bad.status_code == 422 and "caldav.url" in bad.json()["detail"]
        assert (await boss.delete("/clients/sarah/connections")).status_code == 204
        assert (await ana.get("/clients/sarah/connections")).json() == {"caldav": None,
                                                                        "smtp": None}
