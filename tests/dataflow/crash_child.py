"""Child processes that die by SIGKILL at a chosen boundary of a saga or two-phase commit.

``python -m tests.dataflow.crash_child`` imports DataFlow once, then for each line of stdin
(``JOB KILL_AT ARG...``) forks a child that runs the job and SIGKILLs itself right after the
KILL_AT-th record of the job's logger — each record follows a durable write of the saga's state
or of the commit decision. It answers each line with the child's exit status: -9 when killed,
else 0 (the job ran to its end) or 3 (it ended with an error). Forking from a process that has
imported everything but opened nothing keeps each crash to a few milliseconds.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from dataflow import DataFlow
from kailash import LocalRuntime, NodeExecutionError, WorkflowBuilder
from tests.dataflow.shop import define, saga_workflow, undo_saga_workflow

R = TypeVar("R")

ROOT = Path(__file__).resolve().parents[2]
KILLED = -signal.SIGKILL


class KillAt(logging.Handler):
    def __init__(self, when: int) -> None:
        super().__init__()
        self.when = when
        self.seen = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.seen += 1
        if self.seen == self.when:
            os.kill(os.getpid(), signal.SIGKILL)


def saga(url: str) -> None:
    """The shop's saga (the guide's steps) on ``url``."""
    db = DataFlow(url)  # its node types live as long as it does
    define(db)
    LocalRuntime().execute(saga_workflow(retry_attempts=1, retry_backoff=0.01).build())


def undo_saga(url: str) -> None:
    """The shop's saga undone by generated nodes on ``url``."""
    db = DataFlow(url)  # its node types live as long as it does
    define(db)
    LocalRuntime().execute(undo_saga_workflow().build())


def two_phase(coordinator_url: str, *participant_urls: str) -> None:
    """A two-phase commit creating one Ledger row in each participant database."""
    coordinator = DataFlow(coordinator_url)
    steps = []
    participants = []  # each keeps its node types registered while it lives
    for i, url in enumerate(participant_urls):
        participant = DataFlow(url)
        participants.append(participant)

        @participant.model
        class Ledger:
            memo: str

        # Each database's Ledger nodes, under a name of their own.
        name = participant.register_node(participant.nodes["LedgerCreateNode"], f"LedgerCreate{i}")
        steps.append({"node": name, "params": {"memo": f"entry {i}"}})
    builder = WorkflowBuilder()
    builder.add_node(
        coordinator.nodes["TransactionManagerNode"],
        "commit",
        {"transaction_type": "two_phase_commit", "steps": steps},
    )
    LocalRuntime().execute(builder.build())


JOBS: dict[str, tuple[str, Callable[..., None]]] = {
    "saga": ("dataflow.saga", saga),
    "undo_saga": ("dataflow.saga", undo_saga),
    "two_phase": ("dataflow.two_phase", two_phase),
}


def run_job(job: str, kill_at: int, args: list[str]) -> int:
    logger_name, work = JOBS[job]
    logger = logging.getLogger(logger_name)
    logger.setLevel(logging.INFO)
    logger.addHandler(KillAt(kill_at))
    try:
        work(*args)
    except NodeExecutionError:
        return 3
    return 0


def serve() -> None:
    for line in sys.stdin:
        job, kill_at, *args = line.split()
        pid = os.fork()
        if pid == 0:
            os._exit(run_job(job, int(kill_at), args))
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)


class Launcher:
    """The parent's side: start the child once, then crash jobs in it one at a time."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.dataflow.crash_child"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, job: str, kill_at: int, *args: str) -> int:
        """Run ``job`` in a fresh child killed at record ``kill_at``; return its exit status."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(" ".join([job, str(kill_at), *args]) + "\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=30)


if __name__ == "__main__":
    serve()


def after_crash(recover: Callable[[], R]) -> R:
    """Run a recovery, again while the killed child's claim is still held.

    The server notices a killed client's connection a moment after the process dies (longer
    on a loaded machine); until then its claim is held and recovery rightly leaves the work
    alone, as it would a live process's.
    """
    deadline = time.monotonic() + 20
    while True:
        report = recover()
        if not report.in_progress or time.monotonic() > deadline:  # type: ignore[attr-defined]
            return report
        time.sleep(0.05)
