"""API replicas and workers as separate `spawnit` processes sharing Redis and S3, as a user runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from conftest import free_port, wait_until


class Cluster:
    """API replicas and workers as separate `spawnit` processes sharing Redis and S3."""

    def __init__(self, root: Path, environ: dict[str, str], tofu_calls) -> None:
        self.root, self.environ, self.tofu_calls = root, environ, tofu_calls
        self.processes: dict[str, subprocess.Popen] = {}
        self.urls: dict[str, str] = {}
        self.metrics: dict[str, int] = {}  # worker -> its Prometheus port
        self.control_file = Path(environ["TOFU_CONTROL"]) if "TOFU_CONTROL" in environ else None

    def _start(self, name: str, arguments: list[str]) -> subprocess.Popen:
        data = self.root / name
        data.mkdir(exist_ok=True)
        log = open(self.root / f"{name}.log", "a")  # noqa: SIM115 - the process writes it
        process = subprocess.Popen(
            [sys.executable, "-m", "spawnit", *arguments], stdout=log, stderr=subprocess.STDOUT, env={**self.environ, "SPAWNIT_DATA_DIR": str(data)}, cwd=data
        )
        self.processes[name] = process
        return process

    def start_api(self, name: str) -> str:
        port = free_port()
        self._start(name, ["serve", "--host", "127.0.0.1", "--port", str(port), "--worker-concurrency", "0"])
        url = self.urls[name] = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 60, f"API replica {name}")
        return url

    def start_worker(self, name: str) -> subprocess.Popen:
        log = self.root / f"{name}.log"
        before = log.read_text() if log.exists() else ""
        self.metrics[name] = port = free_port()
        process = self._start(name, ["worker", "--concurrency", "2", "--metrics-port", str(port)])
        wait_until(lambda: "taking jobs" in log.read_text()[len(before):], 240, f"worker {name} ready")
        return process

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text()

    def stop(self, name: str, how: signal.Signals = signal.SIGTERM) -> None:
        process = self.processes.pop(name)
        process.send_signal(how)
        process.wait(60)

    def worker_running(self, job: dict) -> str:
        """The name of the worker process running ``job`` (its record's owner is host/pid/...)."""
        pid = int(job["owner"].split("/")[1])
        return next(name for name, process in self.processes.items() if process.pid == pid)

    def tofu(self, **settings) -> None:
        """What the stand-in tofu does from its next run on."""
        self.control_file.write_text(json.dumps(settings))
