"""Database errors over REST: a data exception is the caller's 422; a server error's log line
holds no statement parameters or row values."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa

from dataflow import DataFlow
from nexus import Nexus
from tests.dataflow.integration.test_driver_errors import SECRET, assert_no_values, define_people


@pytest.fixture
def people(db: DataFlow) -> DataFlow:
    return define_people(db)


def test_the_gateway_logs_a_server_error_without_parameters(people, serve, caplog):
    api = serve(Nexus("People", dataflow_integration=people).api)
    with people.database.engine.begin() as conn:  # the table disappears under the server
        conn.execute(sa.text("DROP TABLE orders"))
    with caplog.at_level(logging.ERROR):
        out = api.post("/api/orders/bulk", json={"operation": "delete", "filter": {"note": SECRET}})
    assert out.status_code == 500
    assert "gateway: an operation failed" in caplog.text
    assert_no_values(caplog.text + out.text)


def test_an_out_of_range_result_is_a_422_over_rest(people, serve):
    api = serve(Nexus("People", dataflow_integration=people).api)
    body = {"operation": "update", "filter": {"email": SECRET}, "update": {"$inc": {"age": 9}}}
    out = api.post("/api/persons/bulk", json=body)
    assert (out.status_code, out.json()["error"]) == (422, "validation_error")
    assert SECRET not in out.text
