"""The statements of one model on one database, and driver rows turned into records."""

from dataflow.statements.model import ModelStatements

__all__ = ["ModelStatements"]
