"""The distribution as a user installs it: a wheel built from this tree, in a fresh venv.

The wheel is built without build isolation (the dev extra installs ``build`` and a recent
setuptools), from a copy of the tree so the checkout gains no ``build/`` directory. The fresh
venv installs it with ``--no-deps --no-index``; the dependencies come from this environment's
site-packages, added as a plain path (a ``.pth`` line), so none of this environment's own
``.pth`` files — the editable install of this project among them — take effect there.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

CHECK = """
import importlib.metadata, json
import dataflow, kailash, nexus
from dataflow import DataFlow
from kailash import LocalRuntime, WorkflowBuilder

db = DataFlow(":memory:")

@db.model
class Note:
    text: str

wf = WorkflowBuilder()
wf.add_node("NoteCreateNode", "create", {"text": "hello"})
results, _ = LocalRuntime().execute(wf.build())
print(json.dumps({
    "files": [dataflow.__file__, kailash.__file__, nexus.__file__],
    "version": importlib.metadata.version("dataflow-workflows"),
    "created": results["create"]["text"],
}))
"""


def run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=120, **kwargs
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tree = tmp_path_factory.mktemp("tree")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(
        ROOT / "src",
        tree / "src",
        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"),
    )
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", out, tree)
    (built,) = out.glob("*.whl")
    return built


@pytest.fixture(scope="module")
def venv(tmp_path_factory, wheel) -> Path:
    home = tmp_path_factory.mktemp("venv")
    run(sys.executable, "-m", "venv", "--without-pip", home)
    python = home / "bin" / "python"
    purelib = run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    site = Path(purelib.stdout.strip())
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "dependencies.pth").write_text("\n".join(sorted(ours)) + "\n", encoding="utf-8")
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
        "--no-index", wheel)  # fmt: skip
    return home


def test_the_distribution_has_a_name_of_its_own():
    assert PROJECT["name"] == "dataflow-workflows"
    assert PROJECT["scripts"] == {"nexus": "nexus.launcher:main"}


def test_the_wheel_carries_the_three_packages_and_the_license(wheel):
    assert wheel.name.startswith("dataflow_workflows-")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names if "dist-info" not in name} == {
        "dataflow",
        "kailash",
        "nexus",
    }
    assert any(name.endswith("dist-info/licenses/LICENSE") for name in names)
    metadata = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("dist-info/METADATA"))
    )
    assert b"License-Expression: Apache-2.0" in metadata
    assert b"Provides-Extra: nexus" in metadata


def test_the_installed_wheel_imports_and_runs_from_the_fresh_venv(venv):
    done = run(venv / "bin" / "python", "-c", CHECK, cwd=venv)
    found = json.loads(done.stdout)
    assert all(Path(f).is_relative_to(venv) for f in found["files"]), found["files"]
    assert found["version"] == PROJECT["version"]
    assert found["created"] == "hello"


def test_the_installed_nexus_command_runs(venv):
    done = run(venv / "bin" / "nexus", "--help", cwd=venv)
    assert done.stdout.startswith("Usage: nexus")
    assert "serve" in done.stdout
