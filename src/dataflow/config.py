"""DataFlow's options and database URL handling."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, fields
from pathlib import PurePath
from typing import Any

from sqlalchemy.engine import URL, make_url

from dataflow.dialects import dialect_for_scheme
from dataflow.errors import ConfigurationError

DEFAULT_SQLITE_FILE = "dataflow.db"


@dataclass(slots=True)
class DataFlowConfig:
    """Every option ``DataFlow(...)`` accepts. Pool options map onto ``create_engine``."""

    database_url: str | None = None
    #: The instance's name, which a node's ``database`` parameter gives to pick this instance's
    #: node type where several instances define it (default: see ``DatabaseTarget.name``).
    name: str | None = None
    # Connection pool (SQLAlchemy create_engine).
    pool_size: int = 5
    pool_max_overflow: int = 10
    pool_recycle: int = -1
    #: Test a pooled connection before handing it out (None: on for servers, off for SQLite),
    #: so the first statement after a failover or an idle timeout does not fail.
    pool_pre_ping: bool | None = None
    pool_reset_on_return: str | None = "rollback"
    pool_timeout: float = 30.0
    connection_pool_size: int | None = None
    echo: bool = False
    # Monitoring and caching.
    monitoring: bool = False
    slow_query_threshold: float = 100.0
    query_cache_enabled: bool = False
    cache_ttl: int = 300
    cache_backend: str = "memory"
    redis_url: str | None = None
    # Multi-tenancy.
    multi_tenant: bool = False
    tenant_isolation: str = "strict"
    tenant_id_header: str = "X-Tenant-ID"
    tenant_database_prefix: str = "tenant_"
    # Security and compliance.
    encryption_enabled: bool = False
    encryption_key: str | None = None
    audit_logging: bool = False
    gdpr_compliance: bool = False
    data_retention_days: int | None = None
    # Performance.
    bulk_batch_size: int = 1000
    async_operations: bool = False
    read_replica_enabled: bool = False
    read_replica_url: str | None = None
    # Transactions: db.create_tables() at start-up also finishes sagas left in flight.
    recover_sagas_on_start: bool = False

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> DataFlowConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            name = unknown[0]
            hint = difflib.get_close_matches(name, known, n=1)
            extra = f" Did you mean '{hint[0]}'?" if hint else ""
            raise ConfigurationError(
                f"DataFlow got unknown option(s): {', '.join(unknown)}.{extra} "
                f"Known options: {', '.join(sorted(known))}."
            )
        config = cls(**options)
        config.check()
        return config

    def check(self) -> None:
        for name in ("pool_size", "pool_max_overflow", "bulk_batch_size", "cache_ttl"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigurationError(f"{name} must be a non-negative int, got {value!r}")
        threshold = self.slow_query_threshold
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or threshold < 0:
            raise ConfigurationError(
                "slow_query_threshold is in milliseconds (a non-negative number), "
                f"got {threshold!r}"
            )
        if self.pool_reset_on_return not in (None, "rollback", "commit"):
            raise ConfigurationError(
                "pool_reset_on_return must be 'rollback', 'commit' or None, got "
                f"{self.pool_reset_on_return!r}"
            )
        if self.connection_pool_size is not None:
            if self.connection_pool_size < self.pool_size:
                raise ConfigurationError(
                    f"connection_pool_size ({self.connection_pool_size}) caps the total number of "
                    f"connections and cannot be below pool_size ({self.pool_size})"
                )
            self.pool_max_overflow = min(
                self.pool_max_overflow, self.connection_pool_size - self.pool_size
            )
        if self.tenant_isolation not in ("strict", "permissive"):
            raise ConfigurationError(
                f"tenant_isolation must be 'strict' or 'permissive', got {self.tenant_isolation!r}"
            )
        if self.tenant_database_prefix != "tenant_":
            raise ConfigurationError(
                "tenant_database_prefix names a database per tenant, which DataFlow does not "
                "make: tenants share tables, each row keeping its tenant_id (multi_tenant). "
                "Leave the option out."
            )
        if self.name is not None and (not isinstance(self.name, str) or not self.name.strip()):
            raise ConfigurationError(f"name must be a non-empty string, got {self.name!r}")
        if self.cache_backend not in ("memory", "redis"):
            raise ConfigurationError(
                f"cache_backend must be 'memory' or 'redis', got {self.cache_backend!r}"
            )


@dataclass(frozen=True, slots=True)
class DatabaseTarget:
    """Where a DataFlow instance stores its data."""

    url: URL
    dialect: str  # "sqlite", "postgresql" or "mysql"
    memory: bool = False
    from_default: bool = False

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    @property
    def name(self) -> str:
        """The instance name this database suggests: a server's host, a SQLite file's stem."""
        if self.memory:
            return "memory"
        if self.url.host:
            return self.url.host
        return PurePath(self.url.database or DEFAULT_SQLITE_FILE).stem


def resolve_url(url: str | None) -> DatabaseTarget:
    """Turn a user's URL (or its absence) into a SQLAlchemy URL with our chosen driver."""
    from_default = False
    if url is None:
        url = os.environ.get("DATABASE_URL") or None
    if url is None:
        url = f"sqlite:///{DEFAULT_SQLITE_FILE}"
        from_default = True
    if not isinstance(url, str):
        raise ConfigurationError(f"database_url must be a string, got {type(url).__name__}")
    if url == ":memory:":
        url = "sqlite:///:memory:"
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot parse database URL {url!r}; expected e.g. sqlite:///app.db, "
            "postgresql://user:pass@host/db or mysql://user:pass@host/db"
        ) from exc
    dialect = dialect_for_scheme(parsed.drivername)
    if dialect is None:
        raise ConfigurationError(
            f"unsupported database scheme '{parsed.drivername}' in {parsed.render_as_string()}; "
            "DataFlow supports sqlite://, postgresql:// and mysql:// (MariaDB)"
        )
    parsed = parsed.set(drivername=dialect.driver_name)
    memory = dialect.embedded and parsed.database in (None, "", ":memory:")
    return DatabaseTarget(parsed, dialect.name, memory, from_default)
