"""Every Python example of docs/guide.md runs, as the guide says it does.

The guide's convention: each ``##`` section is one program. Its ``python`` blocks run in order
in one namespace, in an empty directory without ``DATABASE_URL`` (so ``DataFlow()`` makes a
SQLite file there). A section whose text holds ``<!-- guide-test: postgresql NAME ... -->``
runs on PostgreSQL instead, each NAME an environment variable holding a URL to an empty
database of its own (skipped when PostgreSQL is unreachable, a failure under CI).
"""

from __future__ import annotations

import logging
import re
import sys
import types
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import fresh_database

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
_SECTION = re.compile(r"^## (.+)$", re.M)
_BLOCK = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
_NEEDS = re.compile(r"<!-- guide-test: (\w+)((?: \w+)+) -->")


def sections() -> list[tuple[str, str]]:
    """(heading, text) of every ``##`` section, in order."""
    text = GUIDE.read_text(encoding="utf-8")
    starts = list(_SECTION.finditer(text))
    return [
        (m.group(1), text[m.end() : nxt.start() if nxt else len(text)])
        for m, nxt in zip(starts, [*starts[1:], None], strict=True)
    ]


def python_blocks(text: str) -> list[str]:
    return [code for lang, code in _BLOCK.findall(text) if lang == "python"]


RUNNABLE = [(title, body) for title, body in sections() if python_blocks(body)]


def test_the_guide_has_examples_and_every_one_is_in_a_section():
    text = GUIDE.read_text(encoding="utf-8")
    in_sections = sum(len(python_blocks(body)) for _, body in sections())
    assert in_sections == len(python_blocks(text)) >= 10
    assert not [lang for lang, _ in _BLOCK.findall(text) if lang in ("", "py", "python3")]


@pytest.mark.parametrize(("title", "body"), RUNNABLE, ids=[title for title, _ in RUNNABLE])
def test_the_sections_examples_run(title, body, tmp_path, monkeypatch, admin_engines, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    caplog.set_level(logging.WARNING)
    # A module of its own, as a script is, so annotations resolve against its imports.
    module = types.ModuleType("guide_section")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    scope = module.__dict__
    with ExitStack() as stack:
        needs = _NEEDS.search(body)
        if needs:
            backend, names = needs.group(1), needs.group(2).split()
            for index, name in enumerate(names):
                folder = tmp_path / f"db{index}"
                folder.mkdir()
                url = stack.enter_context(fresh_database(backend, admin_engines, folder))
                monkeypatch.setenv(name, url)
        for number, code in enumerate(python_blocks(body), 1):
            exec(compile(code, f"docs/guide.md: {title}, block {number}", "exec"), scope)
        for value in scope.values():  # close the section's pools before its databases go
            close = getattr(value, "close", None)
            if type(value).__name__ == "DataFlow" and callable(close):
                close()
    # Each block asserts what it shows; besides, running them logs no error of DataFlow's.
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
