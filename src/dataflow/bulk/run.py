"""One bulk write of many rows: batches, transactions, true counts, failed rows.

Rows stream from any iterable in batches of ``batch_size``. Each batch is checked row by row,
stamped by the statement pipeline (``Records.stamp_insert_batch`` / ``stamp_update_batch``)
and written with the driver's fast path or with set-based statements over a staging table.

Atomic (the default): the whole call is one transaction; the first bad row (a value its
field refuses, or a row the database refuses) rolls everything back and the error names it.
Not atomic: each batch commits on its own; bad rows are left out and reported with their
reasons while the rest is written.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import repeat
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from dataflow.bulk.batches import (
    BadRow,
    Progress,
    RowChecker,
    chunks,
    grouped,
    key_order,
    key_values,
    split_on_repeats,
)
from dataflow.bulk.conflicts import (
    BACKOFF,
    RETRIES,
    Mark,
    deadlock_error,
    owns_transaction,
    quietly,
    savepoint,
)
from dataflow.bulk.direct import DirectUpsert
from dataflow.bulk.stage import Stage
from dataflow.database.driver_errors import describe, translate
from dataflow.dialects.bulk import Row, RowRefused
from dataflow.errors import DataFlowError
from dataflow.features.base import Image, Scope
from dataflow.features.versioning import COLUMN as VERSION
from dataflow.statements.model import OUTSIDE

if TYPE_CHECKING:
    from dataflow.statements.model import ModelStatements
    from dataflow.store import Store

Mode = Literal["insert", "skip", "upsert", "update"]
Write = Callable[[Connection, list[Any], list[int]], None]

#: Database errors a row's values can cause; any other error is not one row's fault.
_ROW_ERRORS = (sa_exc.IntegrityError, sa_exc.DataError)
log = logging.getLogger("dataflow.bulk")


@dataclass(slots=True)
class Outcome:
    """What a bulk call did: counts, ids by input row (when asked), and rows left out."""

    processed: int = 0
    inserted: int = 0
    updated: int = 0
    skipped: int = 0
    batches: int = 0
    ids: list[Any] | None = None
    failed: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Plan:
    """What one bulk call asks for."""

    mode: Mode
    checker: RowChecker
    keys: tuple[str, ...] = ()
    update_fields: frozenset[str] | None = None
    return_ids: bool = False
    atomic: bool = True
    batch_size: int = 1000
    progress: bool | Callable[[int, int | None], Any] = False


class BulkRun:
    """Writes the rows of one bulk call of one model."""

    def __init__(
        self,
        store: Store,
        statements: ModelStatements,
        scope: Scope,
        plan: Plan,
        refuse: Callable[[BadRow], Exception],
    ) -> None:
        self.store = store
        self.statements = statements
        self.scope = scope
        self.plan = plan
        self.refuse = refuse
        self.table = statements.table
        self.pk = statements.spec.primary_key
        self.where = statements.where(scope)
        kinds = {name: f.type.name for name, f in statements.spec.fields.items()}
        self.loader = store.dialect.bulk_loader(store.database.engine.dialect, kinds)
        self.outcome = Outcome(ids=[] if plan.return_ids else None)
        #: Whether each change's images go to the audit log.
        self.audited = bool(statements.historians)
        # An audit row names its record, so audited inserts learn their ids too.
        self._reserve = (plan.return_ids or self.audited) and statements.spec.fields[
            self.pk
        ].autoincrement
        self.unique = statements.unique_key(plan.keys, scope) if plan.keys else None
        self._stages: dict[tuple[tuple[str, ...], tuple[str, ...]], Stage] = {}
        self._created: set[Stage] = set()
        self._directs: dict[tuple[Any, ...], DirectUpsert] = {}
        #: Set when the last transaction failed because the database broke a deadlock.
        self._conflict = False

    def run(self, source: Iterable[Any]) -> Outcome:
        plan = self.plan
        total = len(source) if isinstance(source, Sized) else None
        progress = Progress(plan.progress, total, self.scope.label) if plan.progress else None
        # A call runs again after a deadlock only in a transaction of its own: inside a
        # caller's, the database has undone more than the call (on MySQL, all of it).
        owned = owns_transaction(self.store.database)
        try:
            if plan.atomic:
                # One transaction either way: where each statement costs round trips of its
                # own (COPY), fewer, bigger ones write plain inserts faster.
                size = plan.batch_size
                if plan.mode == "insert":
                    size = max(size, self.loader.insert_rows)

                def write_all() -> None:
                    with self._transaction() as conn:
                        for start, chunk in chunks(source, size):
                            self._chunk(conn, start, chunk, progress)

                # A list can be written again from its start; a stream cannot.
                self._retrying(write_all, owned, isinstance(source, Sequence), progress)
            else:
                for start, chunk in chunks(source, plan.batch_size):

                    def write_batch(start: int = start, chunk: list[Any] = chunk) -> None:
                        with self._transaction() as conn:
                            self._chunk(conn, start, chunk, progress)

                    self._retrying(write_batch, owned, True, progress, (start, len(chunk)))
        finally:
            if progress is not None:
                progress.close()
        self.outcome.failed.sort(key=lambda failure: failure["row"])
        self.outcome.batches = -(-self.outcome.processed // plan.batch_size)
        return self.outcome

    def _retrying(
        self,
        write: Callable[[], None],
        owned: bool,
        replayable: bool,
        progress: Progress | None,
        batch: tuple[int, int] | None = None,
    ) -> None:
        """Run ``write``, and again (a few times) when the database rolled it back to break a
        deadlock or serialization conflict, if the transaction is its own and can be rerun."""
        before = Mark.of(self.outcome, progress)
        for attempt in range(1 + RETRIES):
            self._conflict = False
            try:
                write()
                return
            except DataFlowError:
                if not self._conflict:
                    raise
                if not (owned and replayable) or attempt == RETRIES:
                    label = self.scope.label
                    raise deadlock_error(label, owned, replayable, attempt + 1, batch) from None
            before.restore(self.outcome, progress)
            # Apart, the transactions that deadlocked are likelier to pass each other.
            time.sleep(random.uniform(0, BACKOFF * 2**attempt))

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        with self.store.connection(self.scope.label, True, self.scope) as conn:
            try:
                yield conn
            except BaseException as exc:
                self._conflict = self.store.dialect.conflicted(exc)
                # A rollback takes temporary tables with it, except where DDL is not
                # transactional (MySQL): there they would outlive the call on a pooled
                # connection.
                if not self.loader.transactional_ddl:
                    quietly(self._drop_stages, conn)
                self._created.clear()
                raise
            self._drop_stages(conn)

    def _drop_stages(self, conn: Connection) -> None:
        for stage in self._created:
            stage.drop(conn)
        self._created.clear()

    # -- one batch ------------------------------------------------------------------------

    def _chunk(
        self, conn: Connection, start: int, chunk: list[Any], progress: Progress | None
    ) -> None:
        outcome = self.outcome
        rows, indexes, bad, fields = self.plan.checker.check_batch(start, chunk)
        for problem in bad:
            self._failed(problem.index, problem.reason, problem.field, self.refuse(problem))
        if rows:
            self.statements.accept(rows, indexes, self.scope)
            if fields is not None and len(rows[0]) != len(fields):  # it took some out
                fields = tuple(n for n in fields if n in rows[0])
        if outcome.ids is not None:
            outcome.ids.extend([None] * len(chunk))
        outcome.processed += len(chunk)
        if rows:
            if self.plan.mode == "update":
                self._update(conn, rows, indexes)
            elif self.plan.mode == "insert":
                self._plain(
                    conn, rows, indexes, self.statements.stamp_insert_batch(rows, self.scope)
                )
            else:
                self._keyed(conn, rows, indexes, fields)
        if progress is not None:
            for done in range(0, len(chunk), self.plan.batch_size):
                progress.advance(min(self.plan.batch_size, len(chunk) - done))

    def _failed(self, index: int, reason: str, field: str | None, error: Exception) -> None:
        """A row is at fault: stop an atomic call, note it in any other."""
        if self.plan.atomic:
            raise error
        self.outcome.failed.append({"row": index, "field": field, "error": reason})

    def _update(self, conn: Connection, rows: list[Row], indexes: list[int]) -> None:
        shared = self.statements.stamp_update_batch(rows, self.scope)
        key = (self.pk,)
        versioned = self.statements.versioning is not None
        order = key_order(key_values(rows, key))
        if order is not None:  # rows are updated, and so locked, in key order
            rows = [rows[i] for i in order]
            indexes = [indexes[i] for i in order]
        for _, group, at in grouped(rows, indexes, list(map(frozenset, rows))):
            # A row's version is the one it was read at: a condition, not a change.
            same = (VERSION,) if versioned and VERSION in group[0] else ()
            names = tuple(n for n in group[0] if n != self.pk and n not in same)
            stage = self._stage(conn, (self.pk, *names, *same), key)
            write = self._staged_update(stage, names, shared, same)
            for part, part_at in split_on_repeats(group, at, key):
                self._apply(conn, part, part_at, write)

    def _keyed(
        self, conn: Connection, rows: list[Row], indexes: list[int], fields: tuple[str, ...] | None
    ) -> None:
        """Skip or upsert: rows carrying their key are staged; rows without it are new."""
        # What each row carried, before defaults fill in what was left out.
        given = [frozenset(fields)] * len(rows) if fields else list(map(frozenset, rows))
        shared = self.statements.stamp_insert_batch(rows, self.scope)
        keys = self.plan.keys
        found = key_values(rows, keys)
        if None in found:  # a row without its key can match no row: it is new
            new = [i for i, key in enumerate(found) if key is None]
            self._plain(conn, [rows[i] for i in new], [indexes[i] for i in new], shared)
            keep = [i for i, key in enumerate(found) if key is not None]
            rows = [rows[i] for i in keep]
            indexes = [indexes[i] for i in keep]
            given = [given[i] for i in keep]
            found = [found[i] for i in keep]
        order = key_order(found)
        if order is not None:  # rows are written, and so locked, in key order
            rows = [rows[i] for i in order]
            indexes = [indexes[i] for i in order]
            given = [given[i] for i in order]
        for names, group, at in grouped(rows, indexes, given):
            write = self._staged_insert(conn, group[0], names, shared)
            for part, part_at in split_on_repeats(group, at, keys):
                self._apply(conn, part, part_at, write)

    # -- plain inserts --------------------------------------------------------------------

    def _plain(self, conn: Connection, rows: list[Row], indexes: list[int], shared: Row) -> None:
        pk = self.pk
        returning = self._reserve and not self.loader.reserve_ids(conn, self.table, pk, rows)
        columns = tuple(c.name for c in self.table.c if c.name not in shared and c.name != pk)
        has_pk = list(map(dict.__contains__, rows, repeat(pk)))
        for with_pk, group, at in grouped(rows, indexes, has_pk):
            names = (pk, *columns) if with_pk else columns
            if returning and not with_pk:
                full = [dict.fromkeys(names) | row | shared for row in group]
                self._apply(conn, full, at, self._returning)
                continue
            sql, encoded = self.loader.encode(self.table, names, group, shared)
            given: dict[int, Any] = {}
            if self.outcome.ids is not None:
                given = dict(zip(at, map(dict.get, group, repeat(pk)), strict=True))
            by_index = dict(zip(at, group, strict=True)) if self.audited else {}

            def load(
                conn: Connection,
                part: list[Any],
                part_at: list[int],
                sql: str = sql,
                given: dict[int, Any] = given,
                by_index: dict[int, Row] = by_index,
            ) -> None:
                self.loader.load(conn, sql, part)
                self._inserted(part_at, [given.get(i) for i in part_at])
                if by_index:
                    self._record_created(conn, [by_index[i] for i in part_at])

            names_rows = self.loader.names_refused(conn, self.table)
            self._apply(conn, encoded, at, load, names_rows)

    def _returning(self, conn: Connection, rows: list[Row], indexes: list[int]) -> None:
        ids = self.loader.insert_returning(conn, self.table, self.pk, rows)
        self._inserted(indexes, ids)
        if self.audited:
            pk = self.pk
            self._record_created(conn, [row | {pk: i} for row, i in zip(rows, ids, strict=True)])

    def _record_created(self, conn: Connection, rows: list[Row]) -> None:
        pk = self.pk
        images = [Image(row[pk], None, row) for row in rows]
        self.statements.record(conn, self.scope, "create", images)

    def _inserted(self, indexes: list[int], ids: list[Any]) -> None:
        self.outcome.inserted += len(indexes)
        if self.outcome.ids is not None:
            for index, new_id in zip(indexes, ids, strict=True):
                self.outcome.ids[index] = new_id

    # -- staged writes --------------------------------------------------------------------

    def _stage(self, conn: Connection, columns: tuple[str, ...], keys: tuple[str, ...]) -> Stage:
        """The stage for these columns, created in this transaction (outside any savepoint)."""
        stage = self._stages.get((columns, keys))
        if stage is None:
            stage = Stage(self.loader, self.table, columns, keys, self.where)
            self._stages[columns, keys] = stage
        if stage not in self._created:
            stage.create(conn)
            self._created.add(stage)
        return stage

    def _staged_update(
        self, stage: Stage, names: tuple[str, ...], shared: Row, same: tuple[str, ...]
    ) -> Write:
        """Rows carrying their id (and the version they were read at) update their row."""
        if not (same or self.audited):

            def write(conn: Connection, rows: list[Row], indexes: list[int]) -> None:
                stage.fill(conn, rows)
                self.outcome.updated += stage.update_matching(conn, names, shared)

            return write

        def checked_write(conn: Connection, rows: list[Row], indexes: list[int]) -> None:
            stage.fill(conn, rows)
            # Lock the rows first: their versions and images stay true until the end.
            before = stage.images(conn)
            if same:
                for n, old in list(before.items()):
                    if old[VERSION] != rows[n][VERSION]:
                        del before[n]
                        self._stale(indexes[n], rows[n], old[VERSION])
            self.outcome.updated += stage.update_matching(conn, names, shared, same)
            if self.audited:
                pk = self.pk
                images = [
                    Image(old[pk], old, old | {c: rows[n][c] for c in names})
                    for n, old in before.items()
                ]
                self.statements.record(conn, self.scope, "update", images)

        return checked_write

    def _stale(self, index: int, row: Row, current: int) -> None:
        versioning = self.statements.versioning
        assert versioning is not None
        error = versioning.conflict(self.scope.label, row[self.pk], row[VERSION], current, index)
        reason = f"version {row[VERSION]} is stale; the record is at version {current}"
        self._failed(index, reason, VERSION, error)

    def _staged_insert(
        self, conn: Connection, first: Row, given: frozenset[str], shared: Row
    ) -> Write:
        plan, pk, outcome = self.plan, self.pk, self.outcome
        names = tuple(n for n in first if n not in shared)
        allowed = plan.update_fields
        # An upsert changes the fields a row carries, never its key, and only those allowed.
        changes = tuple(
            n
            for n in first
            if n in given and n not in plan.keys and n != pk and (allowed is None or n in allowed)
        )
        touched = self.statements.stamp_update_batch([], self.scope)
        upsert = plan.mode == "upsert"
        strategy = self.loader.upsert if upsert else "staged"
        if strategy == "staged-conflict" and self.audited:
            # ON CONFLICT cannot tell the rows it updated as they were before; an UPDATE of
            # the rows locked and read first can.
            strategy = "staged"
        # Updating straight from the new row needs every shared value to be one it has.
        if strategy == "direct" and all(
            name in shared or isinstance(value, sa.ClauseElement) for name, value in touched.items()
        ):
            key = (names, changes, tuple(touched))
            direct = self._directs.get(key)
            if direct is None:
                assert self.unique is not None
                direct = self._directs[key] = DirectUpsert(
                    self.loader,
                    self.table,
                    plan.keys,
                    self.unique,
                    self.where,
                    changes,
                    touched,
                    pk,
                )
            return self._direct_upsert(direct, names, shared, changes)
        stage = self._stage(conn, names, plan.keys)
        if strategy == "staged-conflict":
            return self._conflict_upsert(stage, changes, shared, touched)
        ids = outcome.ids
        audited = self.audited

        def write(conn: Connection, rows: list[Row], indexes: list[int]) -> None:
            stage.fill(conn, rows)
            before = stage.images(conn) if audited and upsert else {}
            known = ids is not None or audited
            skipped = stage.matched(conn, pk) if known and not upsert else {}
            if upsert:
                outcome.updated += stage.update_matching(conn, changes, touched)
            inserted = stage.insert_missing(conn, shared)
            outcome.inserted += inserted
            if not upsert:
                outcome.skipped += len(rows) - inserted
            if known:
                held = (
                    {n: row[pk] for n, row in enumerate(rows)}
                    if plan.keys == (pk,)
                    else stage.matched(conn, pk)
                )
                if ids is not None:
                    for n, index in enumerate(indexes):
                        ids[index] = None if n in skipped else held.get(n)
                if audited:
                    new = [n for n in range(len(rows)) if n not in before and n not in skipped]
                    olds = [(old, rows[n]) for n, old in before.items()]
                    self._record_keyed(conn, [(rows[n], held[n]) for n in new], olds, changes)

        return write

    def _record_keyed(
        self,
        conn: Connection,
        created: list[tuple[Row, Any]],
        updated: list[tuple[Row, Row]],
        changes: tuple[str, ...],
    ) -> None:
        """Audit rows inserted (each with its new id) and rows updated (each with its input)."""
        pk = self.pk
        self._record_created(conn, [row | {pk: new_id} for row, new_id in created])
        images = [Image(old[pk], old, old | {c: row[c] for c in changes}) for old, row in updated]
        self.statements.record(conn, self.scope, "update", images)

    def _conflict_upsert(
        self, stage: Stage, changes: tuple[str, ...], shared: Row, touched: Row
    ) -> Write:
        outcome, keys, unique = self.outcome, self.plan.keys, self.unique
        assert unique is not None

        def write(conn: Connection, rows: list[Row], indexes: list[int]) -> None:
            stage.fill(conn, rows)
            written = {
                tuple(r[: len(keys)]): r[len(keys) :]
                for r in stage.upsert(conn, changes, shared, touched, self.pk, unique)
            }
            for row, index in zip(rows, indexes, strict=True):
                found = written.get(tuple(row[k] for k in keys))
                if found is None:  # its key is held by a row outside this operation's scope
                    self._out_of_scope(index)
                    continue
                new_id, inserted = found
                if inserted:
                    outcome.inserted += 1
                else:
                    outcome.updated += 1
                if outcome.ids is not None:
                    outcome.ids[index] = new_id

        return write

    def _direct_upsert(
        self, direct: DirectUpsert, names: tuple[str, ...], shared: Row, changes: tuple[str, ...]
    ) -> Write:
        outcome, keys, pk, audited = self.outcome, self.plan.keys, self.pk, self.audited

        def write(conn: Connection, rows: list[Row], indexes: list[int]) -> None:
            updated, outside = direct.taken(conn, rows)
            found = key_values(rows, keys)
            rejected: list[int] = []
            if outside:  # keys held by rows outside this operation's scope
                rejected = [indexes[i] for i, key in enumerate(found) if key in outside]
                inside = [i for i, key in enumerate(found) if key not in outside]
                rows = [rows[i] for i in inside]
                indexes = [indexes[i] for i in inside]
                found = [found[i] for i in inside]
            before = direct.images(conn, rows) if audited else {}
            direct.write(conn, rows, names, shared)
            outcome.updated += updated
            outcome.inserted += len(rows) - updated
            for index in rejected:
                self._out_of_scope(index)
            if outcome.ids is not None or audited:
                held = (
                    dict(zip(found, found, strict=True))
                    if keys == (pk,)
                    else direct.ids(conn, rows)
                )
                if outcome.ids is not None:
                    for key, index in zip(found, indexes, strict=True):
                        outcome.ids[index] = held.get(key)
                if audited:
                    pairs = list(zip(rows, found, strict=True))
                    created = [(row, held[key]) for row, key in pairs if key not in before]
                    olds = [(before[key], row) for row, key in pairs if key in before]
                    self._record_keyed(conn, created, olds, changes)

        return write

    def _out_of_scope(self, index: int) -> None:
        self._failed(index, OUTSIDE, None, self.statements.outside(self.scope, index))

    # -- savepoints and bad rows ----------------------------------------------------------

    def _apply(
        self,
        conn: Connection,
        items: list[Any],
        indexes: list[int],
        write: Write,
        names_rows: bool = False,
    ) -> None:
        """Write ``items`` in a savepoint; if the database refuses, find the rows at fault.

        Halving keeps what succeeds, so a batch with one bad row costs about 2 * log2(batch)
        extra statements. An atomic call stops at the first bad row; others note it, go on.
        An atomic write whose driver names the refused row itself needs no savepoint.
        """
        if names_rows and self.plan.atomic:
            try:
                write(conn, items, indexes)
            except RowRefused as refused:
                self._refused(indexes[refused.position], _row_error(refused.error))
            return
        try:
            with savepoint(conn):
                write(conn, items, indexes)
        except (sa_exc.DBAPIError, RowRefused) as exc:
            error = exc.error if isinstance(exc, RowRefused) else exc
            # A row-level security policy refuses a row whose key another tenant's row holds.
            hidden = self.store.dialect.policy_refused(error)
            if not hidden:
                error = _row_error(error)
            if len(items) == 1:
                if hidden:
                    self._out_of_scope(indexes[0])
                else:
                    self._refused(indexes[0], error)
                return
            half = len(items) // 2
            self._apply(conn, items[:half], indexes[:half], write)
            self._apply(conn, items[half:], indexes[half:], write)

    def _refused(self, index: int, exc: sa_exc.DBAPIError) -> None:
        error = translate(exc, f"{self.scope.label}: row {index}", index)
        self._failed(index, describe(exc), None, error)


def _row_error(error: sa_exc.DBAPIError) -> sa_exc.DBAPIError:
    """``error`` if a row's values can cause it; any other error is raised as it is."""
    if not isinstance(error, _ROW_ERRORS):
        raise error
    return error
