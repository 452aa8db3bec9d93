"""Every error DataFlow raises; one root, mixed with the builtin each one resembles."""

from __future__ import annotations

from typing import Any

from kailash.errors import NodeConfigurationError


class DataFlowError(Exception):
    """Root of DataFlow's errors."""


class ConfigurationError(DataFlowError, ValueError):
    """A DataFlow option or database URL is wrong."""


class ModelDefinitionError(DataFlowError, TypeError):
    """A ``@db.model`` class cannot become a model."""


class ValidationError(DataFlowError, NodeConfigurationError):
    """A node parameter or field value is refused; ``node``, ``param`` and ``field`` say where.

    It is also the workflow core's ``NodeConfigurationError`` (a ``ValueError``), so code that
    catches either sees it.
    """

    def __init__(
        self,
        message: str,
        *,
        node: str | None = None,
        param: str | None = None,
        field: str | None = None,
        row: int | None = None,
    ) -> None:
        super().__init__(message, node)
        self.node = node
        self.param = param
        self.field = field
        self.row = row


class InvalidFilterError(ValidationError):
    """A filter, sort or projection is malformed; ``path`` points inside it."""

    def __init__(self, message: str, *, path: str = "", **where: Any) -> None:
        super().__init__(message, **where)
        self.path = path


class NotFoundError(DataFlowError, LookupError):
    """No record has the requested id (or it is outside the caller's scope)."""

    def __init__(self, message: str, *, model: str = "", record_id: Any = None) -> None:
        super().__init__(message)
        self.model = model
        self.record_id = record_id


class VersionConflictError(DataFlowError):
    """An optimistic-locking update named a version that is no longer current."""

    def __init__(
        self,
        message: str,
        *,
        model: str = "",
        record_id: Any = None,
        current_version: Any = None,
        row: int | None = None,
    ) -> None:
        super().__init__(message)
        self.model = model
        self.record_id = record_id
        self.current_version = current_version
        #: The input row of a bulk update that named the stale version.
        self.row = row


class TenantIsolationError(DataFlowError, PermissionError):
    """An operation would cross tenants, or has no tenant where one is required."""


class DatabaseError(DataFlowError):
    """The database refused a statement; what a program needs of the driver's error is kept.

    ``sqlstate`` is the SQLSTATE of the refusal (on MariaDB and SQLite, which report codes of
    their own, the standard one for what they said: 23505 unique, 23503 foreign key, 23502 not
    null, 23514 check, 22001 too long, 22003 out of range), ``constraint`` the constraint the
    database named (SQLite names the columns instead, as ``table.column``), ``driver_error``
    the driver's exception class. The driver's exception itself is not chained: its message,
    ``DETAIL`` line and statement parameters can hold row values.

    ``row`` is the index of the input row that a bulk operation found at fault, if any.
    """

    def __init__(
        self,
        message: str,
        *,
        row: int | None = None,
        sqlstate: str | None = None,
        constraint: str | None = None,
        driver_error: str | None = None,
    ) -> None:
        super().__init__(message)
        self.row = row
        self.sqlstate = sqlstate
        self.constraint = constraint
        self.driver_error = driver_error


class DatabaseConnectionError(DatabaseError, ConnectionError):
    """The database server could not be reached or refused the login.

    Its message names the host, port, database and user, never the password.
    """


class IntegrityError(DatabaseError):
    """A constraint (unique, not-null, foreign key, check) refused a write."""


class DeadlockError(DatabaseError):
    """The database rolled a transaction back to break a deadlock or serialization conflict
    with a concurrent one; running the whole transaction again can succeed."""


class MigrationError(DataFlowError):
    """A model and its existing table differ in a way that needs a migration."""


class TransactionError(DataFlowError):
    """A transaction, saga or two-phase commit could not do what was asked."""


class TransactionTimeoutError(TransactionError, TimeoutError):
    """A transaction outlived its ``timeout`` and was rolled back."""


class SagaError(TransactionError):
    """A saga step failed; ``status`` says whether the completed steps were compensated.

    ``status`` is ``"compensated"`` when every completed step was undone, or ``"compensating"``
    when a compensation failed too and ``db.recover_sagas()`` will finish the work.
    """

    def __init__(self, message: str, *, saga_id: str, step: str, status: str) -> None:
        super().__init__(message)
        self.saga_id = saga_id
        self.step = step
        self.status = status
