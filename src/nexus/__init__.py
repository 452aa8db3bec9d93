"""Nexus: DataFlow models and workflows over REST, CLI and MCP."""

from nexus.app import Nexus

__all__ = ["Nexus"]
