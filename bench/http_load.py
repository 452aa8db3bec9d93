"""Load check of the REST channel on loopback: Nexus beside a hand-written FastAPI endpoint.

Run: ``.venv/bin/python bench/http_load.py`` (needs ``wrk``: ``apt-get install wrk``). Each
peer is served by one uvicorn worker in a subprocess on 127.0.0.1 over a SQLite file (WAL);
``wrk`` drives ``GET /api/products/{id}`` (random ids among seeded rows) and
``POST /api/products`` for a bounded time each. Prints requests/s, p99 latency and errors.
The hand-written peer runs the same SQLAlchemy Core statements with no gateway, no workflow
and no generated schemas, which shows what those cost per request.
"""

# No postponed annotations: FastAPI reads the endpoint annotations of the hand-written peer.
import argparse
import datetime as dt
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _util import table

SEED = 1000
PEERS = {"nexus": "Nexus (DataFlow + gateway)", "fastapi": "FastAPI + SQLAlchemy Core"}
GET_SCRIPT = f"""
request = function()
  return wrk.format(nil, "/api/products/" .. math.random(1, {SEED}))
end
"""
POST_SCRIPT = """
wrk.method = "POST"
wrk.body = '{"name": "Bench", "price": 9.5}'
wrk.headers["Content-Type"] = "application/json"
"""


def nexus_app(url: str) -> Any:
    from dataflow import DataFlow
    from nexus import Nexus

    db = DataFlow(url)

    @db.model
    class Product:
        name: str
        price: float

    db.create_tables()
    return Nexus("Bench", dataflow_integration=db).api


def fastapi_app(url: str) -> Any:
    import sqlalchemy as sa
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel

    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _wal(dbapi_conn: Any, _: Any) -> None:
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=NORMAL")

    table_ = sa.Table(
        "products",
        sa.MetaData(),
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("price", sa.Double, nullable=False),
        sa.Column("created_at", sa.DateTime),
        sa.Column("updated_at", sa.DateTime),
    )
    table_.metadata.create_all(engine)
    insert = table_.insert().returning(*table_.c)
    by_id = sa.select(table_).where(table_.c.id == sa.bindparam("pk"))

    class ProductIn(BaseModel):
        name: str
        price: float

    class Product(ProductIn):
        id: int
        created_at: dt.datetime
        updated_at: dt.datetime

    app = FastAPI()

    @app.get("/api/products/{pk}", response_model=Product)
    def read(pk: int) -> Any:
        with engine.begin() as conn:
            row = conn.execute(by_id, {"pk": pk}).mappings().first()
        if row is None:
            raise HTTPException(404)
        return dict(row)

    @app.post("/api/products", response_model=Product, status_code=201)
    def create(body: ProductIn) -> Any:
        now = dt.datetime.now(dt.UTC)
        with engine.begin() as conn:
            values = {**body.model_dump(), "created_at": now, "updated_at": now}
            return dict(conn.execute(insert, values).mappings().one())

    return app


def serve(kind: str, url: str, port: int) -> None:
    """Entry point of the server subprocess."""
    import uvicorn

    app = nexus_app(url) if kind == "nexus" else fastapi_app(url)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wrk(url: str, script: str, seconds: int, connections: int) -> dict[str, float]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, url],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    p99 = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    assert p99, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rps, out
    return {"rps": float(rps.group(1)), "p99": float(p99.group(1)) * scale, "errors": errors}


def run_peer(kind: str, seconds: int, connections: int) -> dict[str, dict[str, float]]:
    folder = tempfile.mkdtemp()
    url = f"sqlite:///{Path(folder) / 'bench.db'}"
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, url, str(port)],
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/api/products/1", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{kind} server did not start") from None
                time.sleep(0.2)
        with httpx.Client(base_url=base) as client:
            for i in range(SEED):
                made = client.post("/api/products", json={"name": f"p{i}", "price": i})
                assert made.status_code == 201, made.text
        return {
            "GET /api/products/{id}": wrk(base, GET_SCRIPT, seconds, connections),
            "POST /api/products": wrk(f"{base}/api/products", POST_SCRIPT, seconds, connections),
        }
    finally:
        server.terminate()
        server.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=5, help="per endpoint and peer")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve[0], args.serve[1], int(args.serve[2]))
        return
    if shutil.which("wrk") is None:
        sys.exit("bench/http_load.py needs wrk on PATH: apt-get install wrk")
    results = {kind: run_peer(kind, args.seconds, args.connections) for kind in PEERS}
    rows = []
    for endpoint in results["nexus"]:
        for kind, label in PEERS.items():
            r = results[kind][endpoint]
            rows.append(
                [endpoint, label, f"{r['rps']:,.0f}", f"{r['p99']:.1f}", f"{r['errors']:.0f}"]
            )
        ratio = results["nexus"][endpoint]["rps"] / results["fastapi"][endpoint]["rps"]
        rows.append([endpoint, "Nexus / FastAPI", f"{ratio:.2f}", "", ""])
    print(
        table(
            f"REST on loopback, 1 uvicorn worker, wrk -t1 -c{args.connections} -d{args.seconds}s",
            ["endpoint", "peer", "requests/s", "p99 ms", "errors"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
