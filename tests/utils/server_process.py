"""`licensing serve` as an administrator starts it: a separate process (and its workers) on
127.0.0.1, a free port, stopped with everything it started however the test ends."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
# uvicorn logs this once per worker process when its application has started.
WORKER_STARTED = "Application startup complete."


def licensing_command() -> list[str]:
    """The installed `licensing` script next to this interpreter (the venv's), else on PATH."""
    beside = Path(sys.executable).parent / "licensing"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("licensing")
    if found is None:
        raise RuntimeError("the `licensing` command is not installed")
    return [found]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ServerProcess:
    """A running `licensing serve`: its address, its process and what it has logged so far."""

    base_url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


@contextmanager
def licensing_serve(
    *, workers: int, env: Mapping[str, str], log_path: Path, cwd: Path
) -> Iterator[ServerProcess]:
    """Start ``licensing serve --workers N`` and wait until every worker has started and
    /readyz answers; on leaving, stop the process group it runs in (the workers with it)."""
    port = free_port()
    arguments = ["serve", "--workers", str(workers), "--host", "127.0.0.1", "--port", str(port)]
    process = start_licensing(arguments, env=env, log_path=log_path, cwd=cwd)
    served = ServerProcess(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_until_ready(served, workers)
        yield served
    finally:
        stop_process_group(process)


def start_licensing(
    args: list[str], *, env: Mapping[str, str], log_path: Path, cwd: Path
) -> subprocess.Popen[bytes]:
    """Start ``licensing ARGS`` with its output (standard output and error) in ``log_path``.

    It runs in a session of its own, so ``stop_process_group`` stops it with every process it
    started (uvicorn's workers)."""
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [*licensing_command(), *args],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_until_ready(served: ServerProcess, workers: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        if served.process.poll() is not None:
            raise RuntimeError(
                f"`licensing serve` exited with {served.process.returncode}:\n{served.log()}"
            )
        if served.log().count(WORKER_STARTED) >= workers and _ready(served.base_url):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"`licensing serve` did not start {workers} workers in "
                f"{START_TIMEOUT_SECONDS:.0f} s:\n{served.log()}"
            )
        time.sleep(0.1)


def _ready(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def stop_process_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started by ``start_licensing`` and everything it started."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(STOP_TIMEOUT_SECONDS)
    # Workers left behind by a supervisor that died are in the same group: none may outlive it.
    _signal_group(process, signal.SIGKILL)
    process.wait(STOP_TIMEOUT_SECONDS)


def _signal_group(process: subprocess.Popen[bytes], signal_number: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal_number)
