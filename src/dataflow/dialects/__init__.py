"""What differs between the databases DataFlow runs on: one class per backend."""

from dataflow.dialects.base import Claim, Dialect, StillAttached
from dataflow.dialects.mysql import MySQL
from dataflow.dialects.postgresql import PostgreSQL
from dataflow.dialects.sqlite import SQLite

#: By SQLAlchemy's dialect name; MariaDB is served by the MySQL dialect.
_DIALECTS: dict[str, Dialect] = {
    "sqlite": SQLite(),
    "postgresql": PostgreSQL(),
    "mysql": MySQL(),
    "mariadb": MySQL(),
}


def dialect_for_scheme(scheme: str) -> Dialect | None:
    """The Dialect a database URL's scheme (``postgresql``, ``mariadb+pymysql``...) means."""
    return next((d for d in _DIALECTS.values() if scheme in d.schemes), None)


def dialect_named(name: str) -> Dialect:
    """The Dialect of SQLAlchemy's backend ``name`` (``"sqlite"``, ``"postgresql"``, ...)."""
    try:
        return _DIALECTS[name]
    except KeyError:
        raise LookupError(f"DataFlow has no dialect for '{name}'") from None


__all__ = [
    "Claim",
    "Dialect",
    "MySQL",
    "PostgreSQL",
    "SQLite",
    "StillAttached",
    "dialect_for_scheme",
    "dialect_named",
]
