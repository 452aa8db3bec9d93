"""The tables DataFlow keeps for sagas and two-phase commits, and how values are kept in them.

Step inputs and outputs are stored as JSON; datetimes, dates and Decimals are tagged so that a
compensation run after a crash receives the same Python values the step saw.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow.database.driver_errors import wrapped
from dataflow.errors import DatabaseError, TransactionError
from dataflow.models.types import UTCDateTime

if TYPE_CHECKING:
    from dataflow.database.connections import Database

metadata = sa.MetaData()

sagas = sa.Table(
    "dataflow_sagas",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    # running, compensating, completed or compensated
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("definition", sa.Text, nullable=False),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

two_phase = sa.Table(
    "dataflow_two_phase_log",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    # preparing, then commit (the decision) or aborted, then committed
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("participants", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

_ready: weakref.WeakSet[Database] = weakref.WeakSet()
_ready_lock = threading.Lock()


def ensure_tables(database: Database) -> None:
    """Create the log tables once per database, outside any transaction of the user's."""
    if database in _ready:
        return
    with _ready_lock:
        if database in _ready:
            return
        for attempt in range(2):
            try:
                label = "creating DataFlow's saga and two-phase commit logs"
                with wrapped(label), database.connect() as conn, conn.begin():
                    metadata.create_all(conn, checkfirst=True)
                break
            except DatabaseError:
                if attempt:  # the first failure may be another process creating them too
                    raise
        _ready.add(database)


_TAG = "__dataflow_type__"


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {_TAG: "datetime", "value": value.isoformat()}
    if isinstance(value, dt.date):
        return {_TAG: "date", "value": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {_TAG: "decimal", "value": str(value)}
    raise TypeError(
        f"a {type(value).__name__} cannot be kept in the saga log; step inputs and outputs "
        "must be JSON values, datetimes, dates or Decimals"
    )


_DECODE: dict[str, Callable[[str], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "decimal": decimal.Decimal,
}


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 2 and obj.get(_TAG) in _DECODE and "value" in obj:
        return _DECODE[obj[_TAG]](obj["value"])
    return obj


def dumps(value: Any) -> str:
    try:
        return json.dumps(value, default=_encode, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise TransactionError(str(exc)) from None


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_decode)
