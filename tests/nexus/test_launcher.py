"""The ``nexus`` command without its extra names the extra to install instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

from nexus.launcher import EXTRA_MODULES, INSTALL_HINT
from tests.nexus.conftest import nexus_command

#: Loaded by Python at start-up from PYTHONPATH: makes the listed packages unimportable.
BLOCKER = """
import sys

BLOCKED = {blocked!r}


class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED or name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, Blocker())
"""


def run_without(tmp_path: Path, blocked: set[str], *args: str) -> subprocess.CompletedProcess:
    (tmp_path / "sitecustomize.py").write_text(
        textwrap.dedent(BLOCKER.format(blocked=sorted(blocked))), encoding="utf-8"
    )
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    return subprocess.run(
        [nexus_command(), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_console_script_is_the_launcher():
    (script,) = entry_points(group="console_scripts", name="nexus")
    assert script.value == "nexus.launcher:main"


def test_without_click_the_command_names_the_extra_to_install(tmp_path):
    done = run_without(tmp_path, {"click"}, "--help")
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "nexus: the command needs the 'nexus' extra, and its package 'click' is not "
        f"installed: {INSTALL_HINT}"
    )
    assert "Traceback" not in done.stderr


def test_without_any_package_of_the_extra_the_hint_names_the_first_missing(tmp_path):
    done = run_without(tmp_path, set(EXTRA_MODULES), "products", "list")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert INSTALL_HINT in done.stderr
    assert INSTALL_HINT == "pip install 'dataflow-workflows[nexus]'"


def test_a_missing_module_outside_the_extra_is_not_disguised(tmp_path):
    # Only the extra's packages are the user's to install; anything else is a real bug.
    done = run_without(tmp_path, {"nexus.channels.render"}, "--help")
    assert done.returncode == 1
    assert "ModuleNotFoundError" in done.stderr
    assert INSTALL_HINT not in done.stderr


def test_with_the_extra_the_command_runs(tmp_path):
    done = run_without(tmp_path, set(), "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: nexus")
