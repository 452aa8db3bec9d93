"""The ``nexus`` command's entry point: names the extra to install when the CLI cannot load.

The CLI needs the packages of the ``nexus`` extra (click, FastAPI, the ``mcp`` SDK, ...). A
bare ``pip install dataflow-workflows`` does not bring them, and a traceback ending in
``No module named 'click'`` does not say what to do, so the import of the CLI happens here,
where a missing package of that extra becomes a one-line message naming the install command.
"""

from __future__ import annotations

import sys

from kailash.servers.gateway.errors import EXTRA_HINT as INSTALL_HINT

#: Top-level modules the ``nexus`` extra installs (its packages' import names).
EXTRA_MODULES = frozenset(
    {
        "click",
        "fastapi",
        "starlette",
        "pydantic",
        "pydantic_core",
        "uvicorn",
        "websockets",
        "mcp",
        "anyio",
        "jwt",
        "httpx",
        "prometheus_client",
    }
)


def main() -> None:
    """Run the Nexus CLI, or exit with the extra to install when its packages are missing."""
    try:
        from nexus.channels.cli import main as cli
    except ModuleNotFoundError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in EXTRA_MODULES:
            raise
        sys.exit(
            f"nexus: the command needs the 'nexus' extra, and its package '{missing}' is not "
            f"installed: {INSTALL_HINT}"
        )
    cli()
