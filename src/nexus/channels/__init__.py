"""The channels Nexus serves: REST, MCP and the CLI, one module each."""
