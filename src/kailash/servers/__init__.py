"""Servers built on the workflow core."""
