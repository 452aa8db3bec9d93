"""Every ``pip install`` the project tells a user — in errors, the README, the guide — works."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest

from dataflow import DataFlow
from dataflow.errors import ConfigurationError

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
HINT = re.compile(r"""pip install\s+['"]?(?P<name>[A-Za-z][\w.-]*)(?:\[(?P<extras>[^\]]*)\])?""")


def hints() -> list[tuple[str, str, str | None]]:
    """(file, distribution, extras) for each install command written in the tree."""
    files = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"), *(ROOT / "src").rglob("*.py")]
    return [
        (str(path.relative_to(ROOT)), match["name"], match["extras"])
        for path in files
        for match in HINT.finditer(path.read_text(encoding="utf-8"))
    ]


def test_the_tree_gives_install_hints():
    # The tqdm and Nexus hints at least (the driver hint is built: tested below);
    # an empty scan would prove nothing.
    extras = {extras for _, _, extras in hints()}
    assert {"progress", "nexus"} <= extras


def test_every_install_hint_names_this_distribution_and_a_real_extra():
    known = set(PROJECT["optional-dependencies"])
    wrong = [
        (where, name, extras)
        for where, name, extras in hints()
        if name != PROJECT["name"] or not set((extras or "").split(",")) - {""} <= known
    ]
    assert wrong == []


def test_a_missing_driver_names_the_extra_that_installs_it(monkeypatch):
    for module, url, extra in [
        ("psycopg", "postgresql://app@127.0.0.1:1/shop", "postgresql"),
        ("pymysql", "mysql://app@127.0.0.1:1/shop", "mysql"),
    ]:
        monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(ConfigurationError) as raised:
            DataFlow(url)
        assert str(raised.value).endswith(f"pip install '{PROJECT['name']}[{extra}]'")
