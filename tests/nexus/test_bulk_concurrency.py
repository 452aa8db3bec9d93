"""Bulk upserts of overlapping keys from many HTTP clients at once: no failure, no duplicate."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.nexus.conftest import acting_for, new_tenant

THREADS = 8
CALLS = 10
KEYS = 20


def test_concurrent_bulk_upserts_over_rest_neither_fail_nor_duplicate(orders_served):
    headers = acting_for(new_tenant())

    def client(seed: int) -> list[int]:
        shuffle = random.Random(seed)
        codes = []
        with httpx.Client(base_url=orders_served.url, timeout=60) as api:
            for call in range(CALLS):
                refs = [f"r{k}" for k in range(KEYS)]
                shuffle.shuffle(refs)
                data = [{"ref": r, "customer_id": 1, "total": seed * 100 + call} for r in refs]
                body = {"operation": "upsert", "conflict_on": ["ref"], "data": data}
                codes.append(api.post("/api/orders/bulk", json=body, headers=headers).status_code)
        return codes

    with ThreadPoolExecutor(THREADS) as pool:
        codes = [code for done in pool.map(client, range(THREADS)) for code in done]
    assert codes == [200] * THREADS * CALLS
    with httpx.Client(base_url=orders_served.url, timeout=60) as api:
        rows = api.get("/api/orders", params={"limit": 100}, headers=headers).json()["records"]
    assert sorted(r["ref"] for r in rows) == sorted(f"r{k}" for k in range(KEYS))
    written = {seed * 100 + call for seed in range(THREADS) for call in range(CALLS)}
    assert all(r["total"] in written for r in rows)
