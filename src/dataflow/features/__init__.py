"""Model options that shape statements, one module each."""

from dataflow.features.base import Feature, Scope
from dataflow.features.timestamps import Timestamps

__all__ = ["Feature", "Scope", "Timestamps"]
