"""Two-phase commit across PostgreSQL and MariaDB/MySQL databases, with a decision log and recovery.

The steps run in one two-phase transaction per database. Then: a ``preparing`` row naming
every participant's transaction id goes into ``dataflow_two_phase_log``; each transaction is
prepared (``PREPARE TRANSACTION`` on PostgreSQL, ``XA END`` + ``XA PREPARE`` on MariaDB); the
row becomes ``commit`` — the decision, durable before any participant commits — and each
prepared transaction is committed. A process that dies between the phases leaves prepared
transactions behind; ``recover_two_phase_commits`` commits those whose row says ``commit`` and
rolls back the rest, reading ``pg_prepared_xacts`` or ``XA RECOVER``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dataflow.database.driver_errors import wrapped
from dataflow.database.scope import TransactionScope, step_scope
from dataflow.dialects import StillAttached, dialect_named
from dataflow.errors import TransactionError
from dataflow.models.types import utcnow
from dataflow.transactions import log as tx_log
from dataflow.transactions.claims import claim
from dataflow.transactions.saga import Settings, involved, refuse_inside_transaction
from dataflow.transactions.steps import Step, with_retries

if TYPE_CHECKING:
    from dataflow.database.transaction import TransactionHost
    from dataflow.store import Store

log = logging.getLogger("dataflow.two_phase")


@dataclass(slots=True)
class TwoPhaseRecovery:
    """What ``db.recover_two_phase_commits()`` did, by transaction id."""

    committed: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    #: Held by a live coordinator (or another recovery): left alone.
    in_progress: list[str] = field(default_factory=list)
    #: Left for later, with the reason (a participant's DataFlow was not given).
    unresolved: dict[str, str] = field(default_factory=dict)


def participant_key(database: TransactionHost) -> str:
    """A participant's name in the log: server and database, never the password."""
    url = database.target.url
    port = url.port or database.dialect.default_port
    return f"{url.host or 'localhost'}:{port}/{url.database}"


def unsupported(db: Store) -> str | None:
    """What is wrong with ``db`` as a participant, after "runs on"; None when it can take part."""
    if db.dialect.two_phase:
        return None
    return (
        f"{db.dialect.name} ({db.target.safe_url}); two-phase commit needs PostgreSQL (PREPARE "
        "TRANSACTION) or MariaDB/MySQL (XA). Use transaction_type 'saga' there."
    )


def check_participants(participants: list[Store]) -> None:
    """Refuse, before anything runs, databases that cannot prepare transactions."""
    for other in participants:
        problem = unsupported(other)
        if problem:
            raise TransactionError(f"two_phase_commit: a participant runs on {problem}")
        with wrapped("two_phase_commit"), other.database.engine.connect() as conn:
            problem = other.dialect.cannot_prepare(conn)
        if problem:
            raise TransactionError(f"two_phase_commit: {other.target.safe_url} {problem}")


def start_two_phase(
    db: Store, steps: list[Step], settings: Settings, data: dict[str, Any]
) -> dict[str, Any]:
    """Run the steps in one transaction per database and commit them all or none."""
    participants = involved(db, steps)
    refuse_inside_transaction([db, *participants], "a two-phase commit")
    check_participants(participants)
    tx_log.ensure_tables(db.database)
    txid = uuid.uuid4().hex
    scope = TransactionScope(
        timeout=settings.timeout,
        label=f"two-phase commit {txid}",
        xid=lambda n: f"dataflow-{txid}-{n}",
    )
    with claim(db.database, f"2pc:{txid}") as held:
        try:
            outputs = _run_steps(db, scope, steps, settings, data)
        except BaseException:
            scope.rollback()
            raise
        _prepare(db, scope, txid)
        _set_status(db, txid, "commit", expected="preparing")
        log.info("two-phase commit %s: decision commit logged", txid)
        try:
            for tx in scope.transactions.values():
                tx.commit()
        except Exception as exc:
            raise TransactionError(
                f"two-phase commit {txid}: the decision to commit is logged but a participant "
                f"could not commit now ({exc}); db.recover_two_phase_commits(...) finishes it"
            ) from exc
        _set_status(db, txid, "committed")
        held.finished()
    log.info("two-phase commit %s: committed", txid)
    return {"transaction_id": txid, "status": "committed", "results": outputs}


def _run_steps(
    db: Store,
    scope: TransactionScope,
    steps: list[Step],
    settings: Settings,
    data: dict[str, Any],
) -> dict[str, Any]:
    outputs: dict[str, Any] = {}
    for step in steps:
        inputs = step.inputs(outputs, data)

        def attempt(n: int, step: Step = step, inputs: dict = inputs) -> Any:
            # A savepoint per attempt, so a retried step starts from a clean slate.
            attempt_scope = TransactionScope(label=scope.label, within=scope)
            try:
                with step_scope(attempt_scope):
                    output = step.run(db, dict(inputs))
            except BaseException:
                attempt_scope.rollback()
                raise
            attempt_scope.commit()
            return output

        outputs[step.name] = with_retries(
            attempt,
            retries=settings.retries(step),
            backoff=settings.retry_backoff,
            deadline=scope.deadline,
            what=f"{scope.label} step '{step.name}'",
        )
    return outputs


def _prepare(db: Store, scope: TransactionScope, txid: str) -> None:
    entries = [
        {"database": participant_key(database), "xid": tx.xid}
        for database, tx in scope.transactions.items()
    ]
    now = utcnow()
    with wrapped(scope.label), db.database.begin(join=False) as conn:
        conn.execute(
            tx_log.two_phase.insert(),
            {
                "id": txid,
                "status": "preparing",
                "participants": tx_log.dumps(entries),
                "created_at": now,
                "updated_at": now,
            },
        )
    try:
        for tx in scope.transactions.values():
            tx.prepare()
    except BaseException as exc:
        scope.rollback()
        _set_status(db, txid, "aborted")
        raise TransactionError(
            f"{scope.label}: a participant could not prepare ({exc}); every participant was "
            "rolled back"
        ) from exc
    log.info("two-phase commit %s: %d participant(s) prepared", txid, len(entries))


def _set_status(db: Store, txid: str, status: str, expected: str | None = None) -> None:
    table = tx_log.two_phase
    stmt = sa.update(table).where(table.c.id == txid).values(status=status, updated_at=utcnow())
    if expected is not None:
        stmt = stmt.where(table.c.status == expected)
    with wrapped(f"two-phase commit {txid}"), db.database.begin(join=False) as conn:
        if conn.execute(stmt).rowcount != 1:
            raise TransactionError(
                f"two-phase commit {txid}: the log no longer says '{expected}'; another process "
                "resolved it"
            )


def _finish_prepared(participant: Store, xid: str, commit: bool) -> None:
    """Commit (or roll back) the prepared transaction ``xid`` if that database still has it."""
    with wrapped(f"recovering {xid}"), participant.database.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT")
        participant.dialect.finish_prepared(conn, xid, commit)


def prepared_xids(conn: sa.Connection) -> list[str]:
    """The ids of the transactions prepared and not finished (on MySQL: on the whole server)."""
    return dialect_named(conn.dialect.name).prepared_xids(conn)


def recover_two_phase_commits(db: Store, participants: list[Store]) -> TwoPhaseRecovery:
    """Resolve every logged two-phase commit that no live coordinator holds."""
    tx_log.ensure_tables(db.database)
    by_key = {participant_key(p.database): p for p in [db, *participants] if p.dialect.two_phase}
    report = TwoPhaseRecovery()
    table = tx_log.two_phase
    with wrapped("two-phase recovery"), db.database.begin(write=False, join=False) as conn:
        ids = list(
            conn.execute(
                sa.select(table.c.id).where(table.c.status.in_(("preparing", "commit")))
            ).scalars()
        )
    for txid in ids:
        with claim(db.database, f"2pc:{txid}") as held:
            if not held:
                report.in_progress.append(txid)
                continue
            with wrapped("two-phase recovery"), db.database.begin(write=False, join=False) as conn:
                row = conn.execute(sa.select(table).where(table.c.id == txid)).one()
            if row.status not in ("preparing", "commit"):
                held.finished()
                continue
            entries = tx_log.loads(row.participants)
            missing = sorted({e["database"] for e in entries if e["database"] not in by_key})
            if missing:
                report.unresolved[txid] = (
                    f"pass the DataFlow of {', '.join(missing)} to recover_two_phase_commits"
                )
                continue
            commit = row.status == "commit"
            try:
                for entry in entries:
                    _finish_prepared(by_key[entry["database"]], entry["xid"], commit)
            except StillAttached:
                report.in_progress.append(txid)  # the next recovery finishes it
                continue
            _set_status(db, txid, "committed" if commit else "aborted", expected=row.status)
            held.finished()
            (report.committed if commit else report.rolled_back).append(txid)
            log.info(
                "two-phase commit %s: %s by recovery",
                txid,
                "committed" if commit else "rolled back",
            )
    return report
