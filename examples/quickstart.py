"""The guide's zero-config example, then a report of what it did.

``make demo`` runs this in a fresh temporary directory, so DataFlow creates ``dataflow.db``
(SQLite, WAL mode) there.
"""

import logging
import os

logging.basicConfig(level=logging.WARNING, format="%(message)s")
logging.getLogger("dataflow").setLevel(logging.INFO)

# --- the guide's first example, unchanged -------------------------------------------------
from dataflow import DataFlow
from kailash.workflow.builder import WorkflowBuilder
from kailash.runtime.local import LocalRuntime

# 1. Zero-config initialization - ALPHA RELEASE APPROVED
db = DataFlow()  # Development: SQLite automatic, Production: PostgreSQL

# 2. Define model - generates 9 nodes automatically
@db.model
class User:
    name: str
    email: str
    active: bool = True

# 3. Use generated nodes immediately
workflow = WorkflowBuilder()
workflow.add_node("UserCreateNode", "create", {
    "name": "Alice", "email": "alice@example.com"
})
workflow.add_node("UserListNode", "list", {
    "filter": {"active": True}
})
workflow.add_connection("create", "result", "list", "input")

# 4. Execute
runtime = LocalRuntime()
results, run_id = runtime.execute(workflow.build())
# --- end of the guide's example -------------------------------------------------------------


def show(record: dict) -> str:
    def text(value: object) -> str:
        return value.isoformat() if hasattr(value, "isoformat") else repr(value)

    return ", ".join(f"{k}={text(v)}" for k, v in record.items())


print()
print(f"database:  {db.target.safe_url} (in {os.getcwd()})")
print(f"nodes:     {', '.join(sorted(db.nodes))}")
print(f"run id:    {run_id}")
print(f"created:   {show(results['create'])}")
print(f"listed:    {results['list']['count']} active user(s)")
for record in results["list"]["records"]:
    print(f"           {show(record)}")
db.close()
