"""DataFlow: zero-config, workflow-native database framework."""

from dataflow.engine import DataFlow
from dataflow.errors import (
    ConfigurationError,
    DatabaseConnectionError,
    DatabaseError,
    DataFlowError,
    DeadlockError,
    IntegrityError,
    InvalidFilterError,
    MigrationError,
    ModelDefinitionError,
    NotFoundError,
    SagaError,
    TenantIsolationError,
    TransactionError,
    TransactionTimeoutError,
    ValidationError,
    VersionConflictError,
)

__all__ = [
    "ConfigurationError",
    "DataFlow",
    "DataFlowError",
    "DatabaseConnectionError",
    "DatabaseError",
    "DeadlockError",
    "IntegrityError",
    "InvalidFilterError",
    "MigrationError",
    "ModelDefinitionError",
    "NotFoundError",
    "SagaError",
    "TenantIsolationError",
    "TransactionError",
    "TransactionTimeoutError",
    "ValidationError",
    "VersionConflictError",
]
