"""Versions, soft delete, restore and the audit trail over REST, MCP and the CLI, per backend."""

from __future__ import annotations

import json

from tests.nexus.conftest import acting_for, mcp_calls, new_tenant


def make(api, headers: dict, ref: str = "A", total: float = 10.0) -> dict:
    made = api.post(
        "/api/orders", json={"ref": ref, "customer_id": 1, "total": total}, headers=headers
    )
    assert made.status_code == 201, made.text
    return made.json()


def test_a_stale_version_is_409_with_the_current_version(orders_api):
    api, one = orders_api, acting_for(new_tenant())
    pk = make(api, one)["id"]
    moved = api.patch(f"/api/orders/{pk}", json={"total": 11, "version": 1}, headers=one)
    assert moved.status_code == 200 and moved.json()["version"] == 2
    replace = {"ref": "A", "customer_id": 2, "total": 12, "version": 1}
    for stale in (
        api.patch(f"/api/orders/{pk}", json={"total": 99, "version": 1}, headers=one),
        api.put(f"/api/orders/{pk}", json=replace, headers=one),
    ):
        assert stale.status_code == 409
        body = stale.json()
        assert (body["error"], body["field"]) == ("conflict", "version")
        assert body["details"] == {"current_version": 2}
    current = api.get(f"/api/orders/{pk}", headers=one).json()
    assert (current["total"], current["customer_id"], current["version"]) == (11.0, 1, 2)
    fresh = api.put(f"/api/orders/{pk}", json={**replace, "version": 2}, headers=one)
    assert fresh.json()["version"] == 3 and fresh.json()["status"] == "pending"


def test_soft_deleted_records_are_hidden_unless_asked_and_come_back_on_restore(orders_api):
    api, one = orders_api, acting_for(new_tenant())
    pk = make(api, one)["id"]
    kept = make(api, one, "B")["id"]
    deleted = api.delete(f"/api/orders/{pk}", headers=one)
    assert deleted.json() == {"id": pk, "deleted": True, "soft": True}

    assert api.get(f"/api/orders/{pk}", headers=one).status_code == 404
    hidden = api.get(f"/api/orders/{pk}", params={"include_deleted": "true"}, headers=one)
    assert hidden.status_code == 200 and hidden.json()["deleted_at"] is not None
    assert [r["id"] for r in api.get("/api/orders", headers=one).json()["records"]] == [kept]
    every = api.get("/api/orders", params={"include_deleted": "true", "sort": "id"}, headers=one)
    assert [r["id"] for r in every.json()["records"]] == [pk, kept]
    queried = api.post("/api/orders/query", json={"include_deleted": True}, headers=one)
    assert queried.json()["count"] == 2
    misspelt = api.get("/api/orders", params={"include_delted": "true"}, headers=one)
    assert (misspelt.status_code, misspelt.json()["field"]) == (422, "include_delted")

    restored = api.post(f"/api/orders/{pk}/restore", headers=one)
    assert restored.status_code == 200 and restored.json()["deleted_at"] is None
    assert api.get(f"/api/orders/{pk}", headers=one).json()["ref"] == "A"
    assert api.get("/api/orders", headers=one).json()["count"] == 2


def test_the_audit_trail_names_each_change_and_who_made_it(orders_api):
    api, tenant = orders_api, new_tenant()
    one = acting_for(tenant)
    pk = make(api, one)["id"]
    api.patch(f"/api/orders/{pk}", json={"total": 12.5}, headers=one)
    api.delete(f"/api/orders/{pk}", headers=one)
    api.post(f"/api/orders/{pk}/restore", headers=one)
    other = make(api, one, "B")["id"]

    trail = api.get(f"/api/orders/{pk}/audit", headers=one).json()
    assert [e["action"] for e in trail["records"]] == ["create", "update", "soft_delete", "restore"]
    assert {(e["record_id"], e["tenant_id"], e["actor"]) for e in trail["records"]} == {
        (pk, tenant, "ops")  # the API key's subject; a request cannot name another actor
    }
    assert trail["records"][1]["changes"]["total"] == {"old": 10.0, "new": 12.5}
    some = api.get(
        f"/api/orders/{pk}/audit",
        params={"action_type": "soft_delete,restore", "count_total": "true", "limit": 1},
        headers=one,
    ).json()
    assert ([e["action"] for e in some["records"]], some["total"]) == (["soft_delete"], 2)
    window = {"start": "2000-01-01", "end": "2000-12-31"}
    assert api.get(f"/api/orders/{pk}/audit", params=window, headers=one).json()["count"] == 0

    created = api.post("/api/orders/audit", json={"action_type": "create"}, headers=one).json()
    assert [e["record_id"] for e in created["records"]] == [pk, other]
    bad = api.post("/api/orders/audit", json={"action_type": "erase"}, headers=one)
    assert (bad.status_code, bad.json()["field"]) == (422, "action_type")


def test_restore_and_audit_follow_the_roles(orders_api):
    """Editors may restore (they may delete); the audit trail is the admin's unless granted."""
    api = orders_api
    acme = {"X-API-Key": "key-editor-acme"}
    pk = make(api, acme, f"R-{new_tenant()}")["id"]
    api.delete(f"/api/orders/{pk}", headers=acme)
    viewer = acting_for("acme", "key-viewer-0001")
    assert api.post(f"/api/orders/{pk}/restore", headers=viewer).status_code == 403
    assert api.get(f"/api/orders/{pk}/audit", headers=viewer).status_code == 403
    assert api.get(f"/api/orders/{pk}/audit", headers=acme).status_code == 403
    assert api.post("/api/orders/audit", json={}, headers=acme).status_code == 403
    assert api.post(f"/api/orders/{pk}/restore", headers=acme).status_code == 200
    trail = api.get(f"/api/orders/{pk}/audit", headers=acting_for("acme")).json()["records"]
    assert [(e["action"], e["actor"]) for e in trail] == [
        ("create", "ed"),
        ("soft_delete", "ed"),
        ("restore", "ed"),
    ]


def test_restore_and_audit_are_mcp_tools_under_the_same_roles(orders_served, orders_api):
    one = acting_for(new_tenant())
    pk = make(orders_api, one)["id"]
    deleted, restored, trail = mcp_calls(
        orders_served.url,
        one,
        ("orders_delete", {"id": pk}),
        ("orders_restore", {"id": pk}),
        ("orders_audit", {"record_id": pk, "action_type": ["soft_delete", "restore"]}),
    )
    assert deleted[1] == {"id": pk, "deleted": True, "soft": True}
    assert restored[1]["deleted_at"] is None
    assert [e["action"] for e in trail[1]["records"]] == ["soft_delete", "restore"]
    viewer = {**one, "X-API-Key": "key-viewer-0001"}
    ((failed, error),) = mcp_calls(orders_served.url, viewer, ("orders_restore", {"id": pk}))
    assert failed and error["status"] == 403


def test_restore_and_audit_are_cli_commands_in_process_and_over_http(orders_served, cli):
    tenant = new_tenant()
    for where in ([], ["--url", orders_served.url]):
        run = ["--api-key", "key-admin-0001", "--tenant", tenant, *where, "orders"]
        ref = f"C{len(where)}"
        made = cli(*run, "create", "--ref", ref, "--customer-id", "3", "--total", "4", "--json")
        assert made.exit_code == 0, made.output
        pk = str(json.loads(made.output)["id"])
        assert cli(*run, "delete", pk).exit_code == 0
        assert "0 record(s)" in cli(*run, "list", "--filter", json.dumps({"ref": ref})).output
        listed = cli(*run, "list", "--include-deleted", "--json", "--filter", f'{{"id": {pk}}}')
        assert json.loads(listed.output)["records"][0]["deleted_at"] is not None
        shown = cli(*run, "get", pk, "--include-deleted", "--json")
        assert json.loads(shown.output)["id"] == int(pk)
        restored = cli(*run, "restore", pk, "--json")
        assert json.loads(restored.output)["deleted_at"] is None
        trail = cli(*run, "audit", pk, "--action-type", "soft_delete,restore", "--json")
        assert [e["action"] for e in json.loads(trail.output)["records"]] == [
            "soft_delete",
            "restore",
        ]
        dated = cli(*run, "audit", "--start", "2000-01-01", "--end", "2000-01-02", "--json")
        assert json.loads(dated.output)["count"] == 0
