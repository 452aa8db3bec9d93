"""Nexus: DataFlow models served over REST, CLI and MCP."""
