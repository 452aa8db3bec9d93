"""How node errors reach HTTP callers: the status that fits, and nothing the server keeps."""

from __future__ import annotations

import pytest

from dataflow import DataFlow, TenantIsolationError, VersionConflictError
from kailash import Node, NodeParameter
from nexus import Nexus


class Failing(Node):
    """Raises the error it is asked for."""

    parameters = {"kind": NodeParameter("kind", str, required=True)}

    def run(self, kind: str) -> dict:
        if kind == "version":
            raise VersionConflictError(
                "Order 7 is at version 3, not 2", model="Order", record_id=7, current_version=3
            )
        if kind == "tenant":
            raise TenantIsolationError("Order 7 belongs to another tenant")
        raise RuntimeError("password=hunter2 in the connection string")


@pytest.fixture
def api(tmp_path, serve):
    db = DataFlow(f"sqlite:///{tmp_path / 'e.db'}")
    db.register_node(Failing, "FailingNode")
    yield serve(Nexus("Errors", dataflow_integration=db).api)
    db.close()


def fail(api, kind: str):
    return api.post("/api/workflows/FailingNode/execute", json={"kind": kind})


def test_a_version_conflict_is_409_with_the_current_version(api):
    out = fail(api, "version")
    assert out.status_code == 409
    assert out.json() == {
        "error": "conflict",
        "message": "Order 7 is at version 3, not 2",
        "field": "version",
        "details": {"current_version": 3},
    }


def test_a_tenant_isolation_error_is_403(api):
    out = fail(api, "tenant")
    assert (out.status_code, out.json()["error"]) == (403, "forbidden")


def test_an_unexpected_error_is_500_without_its_message(api, caplog):
    out = fail(api, "other")
    assert out.status_code == 500 and out.json()["error"] == "internal_error"
    assert "hunter2" not in out.text
    assert "hunter2" in caplog.text  # the server's log keeps it
