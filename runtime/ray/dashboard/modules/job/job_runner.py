"""Job supervisors on THIS node: start them, find them, signal them, read their logs.

Used by the dashboard for jobs placed on the head and by the node agent for jobs placed on its node.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import psutil

from ray.dashboard.modules.job.common import JOB_LOGS_FILE_TEMPLATE, JobInfo
from ray.dashboard.modules.job.log_tail import follow_log, read_log


class LocalJobRunner:
    def __init__(self, gcs_address: str, session_dir: str, agent_address: Callable[[], str]):
        self.gcs_address = gcs_address
        self.session_dir = session_dir
        self.logs_dir = os.path.join(session_dir, "logs")
        self._agent_address = agent_address  # this node's runtime env agent, gRPC "host:port" ("" if none)
        self._supervisors: dict[str, subprocess.Popen] = {}

    def log_path(self, submission_id: str) -> str:
        return os.path.join(self.logs_dir, JOB_LOGS_FILE_TEMPLATE.format(submission_id=submission_id))

    def start_supervisor(self, submission_id: str) -> int:
        cmd = [
            sys.executable, "-m", "ray.dashboard.modules.job.job_supervisor",
            "--submission-id", submission_id,
            "--gcs-address", self.gcs_address,
            "--session-dir", self.session_dir,
            "--agent-address", self._agent_address(),
        ]
        os.makedirs(self.logs_dir, exist_ok=True)
        with open(os.path.join(self.logs_dir, f"job-supervisor-{submission_id}.err"), "ab") as err:
            # Its own session: restarting the dashboard (or agent) leaves the job running.
            process = subprocess.Popen(
                cmd, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err
            )
        self._supervisors[submission_id] = process
        return process.pid

    def is_tracked(self, submission_id: str) -> bool:
        return submission_id in self._supervisors

    def forget(self, submission_id: str) -> None:
        self._supervisors.pop(submission_id, None)

    def supervisor_pid(self, submission_id: str, info: JobInfo) -> int | None:
        """The live supervisor's pid, or None if it is not running (on this node)."""
        process = self._supervisors.get(submission_id)
        if process is not None:
            return process.pid if process.poll() is None else None
        # Started by an earlier process: trust the stored pid only if it is still that supervisor.
        if info.supervisor_pid is None:
            return None
        try:
            proc = psutil.Process(info.supervisor_pid)
            cmdline = proc.cmdline()
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return info.supervisor_pid if submission_id in cmdline else None

    def signal_stop(self, submission_id: str, info: JobInfo) -> bool:
        pid = self.supervisor_pid(submission_id, info)
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        return True

    def reap(self) -> list[tuple[str, int]]:
        """(submission id, exit code) of every supervisor started here that has exited since last time."""
        exited = []
        for submission_id, process in list(self._supervisors.items()):
            if process.poll() is not None:
                del self._supervisors[submission_id]
                exited.append((submission_id, process.returncode))
        return exited

    def get_logs(self, submission_id: str) -> str:
        return read_log(self.log_path(submission_id))

    def follow_logs(self, submission_id: str, is_finished: Callable[[], Awaitable[bool]]) -> AsyncIterator[str]:
        return follow_log(self.log_path(submission_id), is_finished)

    def remove_logs(self, submission_id: str) -> None:
        for path in (self.log_path(submission_id),
                     os.path.join(self.logs_dir, f"job-supervisor-{submission_id}.err")):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
