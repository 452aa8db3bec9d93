"""The database behind a DataFlow instance: its engine, connections, transactions and the
scopes statements join, driver errors as DataFlow errors, and the feed of committed changes."""

from dataflow.database.connections import Database

__all__ = ["Database"]
