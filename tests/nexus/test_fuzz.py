"""Random bodies and query parameters for every route of ``/openapi.json``: never a 5xx."""

from __future__ import annotations

import json
import random
import string
import time
from typing import Any

import httpx
import pytest

from dataflow import DataFlow
from nexus import Nexus
from tests.nexus.conftest import (
    ADMIN_KEY,
    ORDER_AUTH,
    define_orders,
    define_shop,
    place_order_workflow,
    served,
)

SEED = 20240612
REQUESTS = 1500
BUDGET_S = 25.0
FIELD_NAMES = ["name", "price", "sku", "active", "released", "ref", "total", "status", "id"]
OPERATORS = [
    "$eq",
    "$ne",
    "$gt",
    "$in",
    "$nin",
    "$like",
    "$regex",
    "$between",
    "$not",
    "$and",
    "$or",
    "$exists",
    "$null",
    "$contains",
    "$bogus",
]


class Fuzzer:
    """Values shaped like a JSON schema, or deliberately not."""

    def __init__(self, spec: dict[str, Any], rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.spec["components"]["schemas"][name]
        return schema

    def junk(self, depth: int = 0) -> Any:
        rng = self.rng
        choices: list[Any] = [
            None,
            True,
            rng.choice([0, -1, 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1, 10**30]),
            rng.choice([0.5, -1e308, 1e-320, 3.14]),
            "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 12))),
            rng.choice(["", " ", "\u0000", "\ud800", "é✓😀", "2024-02-30", "1e9999", "-price"]),
            rng.choice(FIELD_NAMES),
            {rng.choice(OPERATORS): rng.choice(FIELD_NAMES)},
        ]
        if depth < 3:
            choices.append([self.junk(depth + 1) for _ in range(rng.randint(0, 3))])
            choices.append({self.key(): self.junk(depth + 1) for _ in range(rng.randint(0, 3))})
        return rng.choice(choices)

    def key(self) -> str:
        return self.rng.choice([*FIELD_NAMES, *OPERATORS, "operation", "filter", "data", "x"])

    def value(self, schema: dict[str, Any], depth: int = 0) -> Any:
        rng = self.rng
        schema = self.resolve(schema)
        if rng.random() < 0.08 or depth > 4:
            return self.junk(depth)
        for union in ("anyOf", "oneOf"):
            if union in schema:
                return self.value(rng.choice(schema[union]), depth + 1)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return rng.choice(schema["enum"])
        kind = schema.get("type")
        if kind == "object" or "properties" in schema:
            return self.object(schema, depth)
        if kind == "array":
            item = schema.get("items", {})
            return [self.value(item, depth + 1) for _ in range(rng.randint(0, 3))]
        if kind == "integer":
            return rng.choice([0, 1, 5, -3, 2**63 - 1, rng.randint(-100, 100)])
        if kind == "number":
            return rng.choice([0.0, 1.5, -2.25, 1e300, rng.uniform(-1000, 1000)])
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "string":
            if schema.get("format") == "date-time":
                return rng.choice(["2024-01-02T03:04:05", "2024-01-02T03:04:05+09:00", "nope"])
            return rng.choice(["Lamp", "x", "", "-name", "name", "status", "a" * 300])
        return self.junk(depth)

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        rng = self.rng
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        out: dict[str, Any] = {}
        for name, prop in props.items():
            if (name in required and rng.random() < 0.9) or rng.random() < 0.4:
                out[name] = self.value(prop, depth + 1)
        if rng.random() < 0.1:
            out[self.key()] = self.junk(depth + 1)
        return out

    def filter(self) -> Any:
        rng = self.rng
        field = rng.choice(FIELD_NAMES)
        condition = rng.choice([self.junk(1), {rng.choice(OPERATORS): self.junk(2)}])
        return rng.choice([{field: condition}, {rng.choice(OPERATORS): [{field: condition}]}])


def _plain(text: str) -> str:
    """``text`` as a URL can carry it (a lone surrogate becomes '?'); JSON escapes the rest."""
    return text.encode("utf-8", "replace").decode("utf-8")


def requests_for(spec: dict[str, Any], fuzz: Fuzzer, rng: random.Random):
    """Endless (method, path, params, body-or-raw) tuples over every operation of the spec."""
    operations = [
        (method.upper(), path, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    assert len(operations) > 20
    while True:
        method, path, op = rng.choice(operations)
        url = path
        params: dict[str, str] = {}
        for parameter in op.get("parameters", []):
            schema = parameter.get("schema", {})
            if parameter["in"] == "path":
                value = rng.choice([1, 2, 0, -1, 2**63, "abc", "1.5", rng.randint(1, 50)])
                url = url.replace("{" + parameter["name"] + "}", _plain(str(value)))
            elif rng.random() < 0.5:
                name = parameter["name"]
                if name in ("filter", "sort") and rng.random() < 0.7:
                    value = fuzz.filter() if name == "filter" else fuzz.junk(1)
                    params[name] = json.dumps(value) if rng.random() < 0.8 else "{bad json"
                else:
                    value = fuzz.value(schema)
                    params[name] = _plain(value) if isinstance(value, str) else json.dumps(value)
        if rng.random() < 0.05:
            params[fuzz.key()] = "1"
        body: Any = None
        raw: str | None = None
        content = op.get("requestBody", {}).get("content", {}).get("application/json")
        if content is not None:
            body = fuzz.value(content["schema"])
            if isinstance(body, dict) and rng.random() < 0.3:
                body["filter"] = fuzz.filter()
            roll = rng.random()
            if roll < 0.04:
                raw = rng.choice(["", "{", "[]", "null", '{"price": NaN}', '{"a": Infinity}'])
            elif roll < 0.06:
                raw = "[" * 5000 + "]" * 5000
        yield method, url, params, body, raw


@pytest.fixture
def fuzzed_app(tmp_path):
    db = DataFlow(f"sqlite:///{tmp_path / 'fuzz.db'}")
    define_shop(db)
    define_orders(db)
    nexus = Nexus("Fuzz", dataflow_integration=db, auth_config=ORDER_AUTH)
    nexus.register("place_order", place_order_workflow(db))
    with served(nexus.api) as url:
        headers = {"X-API-Key": ADMIN_KEY, "X-Tenant-ID": "fuzz"}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
            seed = [{"name": f"p{i}", "price": float(i), "sku": f"s{i}"} for i in range(5)]
            client.post("/api/products/bulk", json={"operation": "create", "data": seed})
            for i in range(3):
                client.post("/api/orders", json={"ref": f"r{i}", "customer_id": i, "total": 1.0})
            yield client
    db.close()


def test_random_requests_to_every_route_never_get_a_5xx(fuzzed_app):
    client = fuzzed_app
    spec = client.get("/openapi.json").json()
    rng = random.Random(SEED)
    fuzz = Fuzzer(spec, rng)
    failures: list[str] = []
    sent = 0
    deadline = time.monotonic() + BUDGET_S
    for method, url, params, body, raw in requests_for(spec, fuzz, rng):
        if sent >= REQUESTS or time.monotonic() > deadline:
            break
        sent += 1
        if raw is not None:
            headers = {"content-type": "application/json"}
            out = client.request(method, url, params=params, content=raw, headers=headers)
        elif body is not None:
            text = json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
            headers = {"content-type": "application/json"}
            out = client.request(method, url, params=params, content=text, headers=headers)
        else:
            out = client.request(method, url, params=params)
        if out.status_code >= 500:
            shown = raw if raw is not None else json.dumps(body)[:300]
            failures.append(
                f"{out.status_code} {method} {url} {params} {shown} -> {out.text[:200]}"
            )
    assert sent >= 200, f"only {sent} requests in {BUDGET_S}s"
    assert failures == [], f"{len(failures)} of {sent} requests failed:\n" + "\n".join(
        failures[:20]
    )
