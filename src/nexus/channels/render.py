"""How the CLI prints results: a table by default, JSON on request."""

from __future__ import annotations

import json
from typing import Any


def render(data: Any, as_json: bool) -> str:
    """Records as a table, any other dict as field/value rows, or everything as JSON."""
    if as_json:
        return json.dumps(data, indent=2)
    if isinstance(data, dict) and "run_id" in data:
        inner = data.get("result", data.get("results"))
        return f"{render(inner, False)}\nrun {data['run_id']}"
    if isinstance(data, dict) and isinstance(data.get("records"), list):
        records = data["records"]
        lines = [table(records)] if records else []
        total = f" of {data['total']}" if data.get("total") is not None else ""
        lines.append(f"{len(records)} record(s){total}")
        return "\n".join(lines)
    if isinstance(data, dict):
        return table([{"field": k, "value": v} for k, v in data.items()])
    return str(data)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line.rstrip(), rule, *(b.rstrip() for b in body)])
