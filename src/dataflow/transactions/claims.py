"""Claims: who is working on a saga or a two-phase commit right now.

A process holds the claim while it runs the saga (or commit), and recovery only touches what it
can claim, so it never works on something a live process is still running, and two recoveries
never work on the same thing. A claim is held by something that dies with its holder (each
dialect says what: a session-level advisory lock on PostgreSQL, ``GET_LOCK`` on MariaDB, an
``flock`` on SQLite, and for an in-memory database, which no other process can see, a set in
this process).
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from dataflow.dialects import Claim

if TYPE_CHECKING:
    from dataflow.database.connections import Database

__all__ = ["Claim", "claim"]


def claim(database: Database, name: str) -> AbstractContextManager[Claim]:
    """Try to claim ``name`` on ``database`` without waiting; the block sees whether it did."""
    key = hashlib.sha256(f"{database.target.url.database}:{name}".encode()).digest()
    return database.dialect.claim(database.engine, key)
