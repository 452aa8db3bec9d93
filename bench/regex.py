"""``$regex`` with patterns that make a backtracking engine take exponential time, on SQLite.

Run: ``.venv/bin/python bench/regex.py``. Prints a Markdown table of milliseconds per query
for texts of growing length: DataFlow's REGEXP (RE2) beside Python's ``re``, which SQLAlchemy
would register. ``re`` is only run on the short texts: its time doubles with each character.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

from _util import table

from dataflow import DataFlow
from kailash import LocalRuntime, WorkflowBuilder

PATTERNS = ["^(a+)+$", "^(a|aa)+$"]
LENGTHS = [16, 20, 24, 1000, 100_000]


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    db = DataFlow(f"sqlite:///{folder / 'regex.db'}")

    @db.model
    class Note:
        text: str

    runtime = LocalRuntime()
    rows = []
    for length in LENGTHS:
        text = "a" * length + "!"
        builder = WorkflowBuilder()
        builder.add_node("NoteBulkDeleteNode", "clear", {"filter": {}, "confirm_all": True})
        builder.add_node("NoteCreateNode", "add", {"text": text})
        builder.add_connection("clear", "result", "add", "input")
        runtime.execute(builder.build())
        for pattern in PATTERNS:
            query = WorkflowBuilder()
            query.add_node("NoteCountNode", "q", {"filter": {"text": {"$regex": pattern}}})
            built = query.build()
            start = time.perf_counter()
            results, _ = runtime.execute(built)
            dataflow_ms = (time.perf_counter() - start) * 1000
            assert results["q"]["count"] == 0
            python_ms = "not run: doubles per character"
            if length <= 20:
                start = time.perf_counter()
                re.search(pattern, text)
                python_ms = f"{(time.perf_counter() - start) * 1000:.1f}"
            rows.append([pattern, str(length + 1), f"{dataflow_ms:.1f}", python_ms])
    db.close()
    print(table("$regex on SQLite (ms per query)", ["pattern", "chars", "DataFlow", "re"], rows))


if __name__ == "__main__":
    sys.exit(main())
