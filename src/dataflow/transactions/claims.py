"""Claims: who is working on a saga or a two-phase commit right now.

A process holds the claim while it runs the saga (or commit), and recovery only touches what it
can claim, so it never works on something a live process is still running, and two recoveries
never work on the same thing. A claim is held by something that dies with its holder:
a session-level advisory lock on PostgreSQL, ``GET_LOCK`` on MariaDB, an ``flock`` on SQLite
(the operating system drops it when the process dies), and for an in-memory database, which
no other process can see, a set in this process.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from dataflow.database.connections import Database

_in_memory: set[tuple[int, str]] = set()
_in_memory_lock = threading.Lock()


class Claim:
    """A held (or refused) claim; ``finished()`` says the claimed work reached its end."""

    def __init__(self, acquired: bool) -> None:
        self.acquired = acquired
        self.done = False

    def __bool__(self) -> bool:
        return self.acquired

    def finished(self) -> None:
        self.done = True


def _digest(database: Database, name: str) -> bytes:
    return hashlib.sha256(f"{database.target.url.database}:{name}".encode()).digest()


@contextmanager
def claim(database: Database, name: str) -> Iterator[Claim]:
    """Try to claim ``name`` on ``database`` without waiting; the block sees whether it did."""
    if database.target.memory:
        holder: Any = _memory_claim(database, name)
    elif database.dialect == "sqlite":
        holder = _file_claim(database, name)
    else:
        holder = _server_claim(database, name)
    with holder as held:
        yield held


@contextmanager
def _memory_claim(database: Database, name: str) -> Iterator[Claim]:
    key = (id(database), name)
    with _in_memory_lock:
        acquired = key not in _in_memory
        _in_memory.add(key)
    try:
        yield Claim(acquired)
    finally:
        if acquired:
            with _in_memory_lock:
                _in_memory.discard(key)


@contextmanager
def _file_claim(database: Database, name: str) -> Iterator[Claim]:
    # One lock file per claim, in the temporary directory, named after the database file and
    # the claim. It is removed only once its work is finished, so two processes can never hold
    # locks on two different files of the same name while the work is still to do.
    path = os.path.realpath(str(database.target.url.database))
    digest = hashlib.sha256(f"{path}:{name}".encode()).hexdigest()[:32]
    lock_path = os.path.join(tempfile.gettempdir(), f"dataflow-claim-{digest}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield Claim(False)
            return
        held = Claim(True)
        yield held
        if held.done:
            os.unlink(lock_path)
    finally:
        os.close(fd)


@contextmanager
def _server_claim(database: Database, name: str) -> Iterator[Claim]:
    digest = _digest(database, name)
    if database.dialect == "postgresql":
        key: Any = int.from_bytes(digest[:8], "big", signed=True)
        take = sa.text("SELECT pg_try_advisory_lock(:key)")
        give = sa.text("SELECT pg_advisory_unlock(:key)")
    else:
        key = "dataflow:" + digest.hex()[:40]  # MariaDB lock names are at most 64 characters
        take = sa.text("SELECT GET_LOCK(:key, 0)")
        give = sa.text("SELECT RELEASE_LOCK(:key)")
    # The lock lives as long as this session; autocommit keeps it from idling in a transaction.
    with database.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        acquired = bool(conn.execute(take, {"key": key}).scalar())
        try:
            yield Claim(acquired)
        finally:
            if acquired:
                conn.execute(give, {"key": key})
