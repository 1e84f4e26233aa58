#!/usr/bin/env python3
"""The scaled orchestrator's figures: a real redis-server, an S3 emulator (moto), two API replicas and
`spawnit worker` processes, all on 127.0.0.1, against a stand-in tofu:

- event latency across replicas: a job started through replica A, followed through replica B
  (from the line tofu printed to the event the follower received), p50 and p99;
- the same with 500 idle event streams open on replica B;
- jobs per minute with 1 and with 4 workers (each runs 2 jobs at once; a job is a synthesis and a
  stand-in plan of --plan-seconds).

    python benchmarks/cluster.py [--jobs 40] [--plan-seconds 1] [--idle 500]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
from cryptography.fernet import Fernet
import httpx

from tofu_standin import stand_in_path  # noqa: E402 - benchmarks/ is on sys.path when run as a script

STAND_IN = """#!{python}
import os, sys, time
action = sys.argv[1]
if action == "plan":
    lines = int(os.environ.get("LINES", "0"))
    for index in range(lines):
        print(f"line {{index}} @{{time.time()}}", flush=True)
        time.sleep(0.05)
    time.sleep(float(os.environ.get("PLAN_SECONDS", "0")) if not lines else 0)
print(f"tofu {{action}} done", flush=True)
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise SystemExit(f"benchmark: {what} not reached within {timeout} s")


class Processes:
    def __init__(self, root: Path, environ: dict[str, str]) -> None:
        self.root, self.environ, self.running = root, environ, []

    def start(self, name: str, arguments: list[str], extra: dict[str, str] | None = None) -> subprocess.Popen:
        data = self.root / name
        data.mkdir(exist_ok=True)
        log = open(self.root / f"{name}.log", "w")  # noqa: SIM115 - the process writes it
        process = subprocess.Popen([sys.executable, "-m", "spawnit", *arguments], stdout=log, stderr=subprocess.STDOUT, cwd=data, env={**self.environ, **(extra or {}), "SPAWNIT_DATA_DIR": str(data)})
        self.running.append(process)
        return process

    def api(self, name: str) -> str:
        port = free_port()
        self.start(name, ["serve", "--port", str(port), "--worker-concurrency", "0"])
        url = f"http://127.0.0.1:{port}"

        def healthy() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(healthy, 60, f"replica {name}")
        return url

    def worker(self, name: str, extra: dict[str, str]) -> subprocess.Popen:
        process = self.start(name, ["worker", "--concurrency", "2"], extra)
        wait_until(lambda: "taking jobs" in (self.root / f"{name}.log").read_text(), 300, f"worker {name}")
        return process

    def stop(self, process: subprocess.Popen) -> None:
        process.send_signal(signal.SIGTERM)
        process.wait(120)
        self.running.remove(process)

    def stop_all(self) -> None:
        for process in self.running:
            process.kill()
            process.wait()


def ended(base: str, job: str) -> dict:
    while True:
        record = httpx.get(f"{base}/api/jobs/{job}", timeout=30).json()
        if record["status"] not in ("queued", "running"):
            return record
        time.sleep(0.1)


def follow_lags(base: str, job: str) -> list[float]:
    lags = []
    with httpx.stream("GET", f"{base}/api/jobs/{job}/events", timeout=300) as response:
        for line in response.iter_lines():
            if line.startswith("data: line "):
                lags.append(time.time() - float(line.rsplit("@", 1)[1]))
    return lags


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def hold_idle_streams(base: str, count: int, ready: threading.Event, stop: threading.Event) -> None:
    async def run() -> None:
        async with httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=None, max_keepalive_connections=None)) as client:
            opened = 0

            async def one(index: int) -> None:
                nonlocal opened
                async with client.stream("GET", f"{base}/api/clients/idle-{index % 50:02d}/events") as response:
                    opened += 1
                    if opened == count:
                        ready.set()
                    async for _ in response.aiter_lines():
                        if stop.is_set():
                            return

            tasks = [asyncio.create_task(one(index)) for index in range(count)]
            while not stop.is_set():
                await asyncio.sleep(0.2)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--plan-seconds", type=float, default=1.0)
    parser.add_argument("--idle", type=int, default=500)
    arguments = parser.parse_args()
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("benchmark: redis-server not found (Debian package redis-server; scripts/test installs it)")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the emulator's request log

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        path = stand_in_path(root, STAND_IN)
        redis_port, s3_port = free_port(), free_port()
        redis = subprocess.Popen([redis_server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--dir", folder], stdout=subprocess.DEVNULL)
        s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=s3_port, verbose=False)
        s3.start()
        endpoint = f"http://127.0.0.1:{s3_port}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench").create_bucket(Bucket="spawnit")
        environ = {key: value for key, value in os.environ.items() if not key.startswith(("SPAWNIT_", "AWS_"))}
        environ |= {
            "PATH": path,
            "SPAWNIT_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "SPAWNIT_S3_ENDPOINT": endpoint,
            "SPAWNIT_SECRET_KEY": Fernet.generate_key().decode(),  # replicas and workers share the secrets' key
            "SPAWNIT_AUTH": "off",
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_REGION": "us-east-1",
            "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        }
        processes = Processes(root, environ)
        try:
            a, b = processes.api("api-a"), processes.api("api-b")
            workers = [processes.worker("worker-1", {"LINES": "100"})]
            httpx.post(f"{a}/api/clients/bench/instances", json={"service": "redis", "instance": "followed"})

            def latency(label: str) -> None:
                job = httpx.post(f"{a}/api/clients/bench/instances/followed/plan").json()["job"]
                lags = follow_lags(b, job)
                print(f"event latency across replicas{label}: p50 {statistics.median(lags) * 1000:.0f} ms, p99 {percentile(lags, 0.99) * 1000:.0f} ms ({len(lags)} lines)")

            latency("")
            ready, stop = threading.Event(), threading.Event()
            holder = threading.Thread(target=hold_idle_streams, args=(b, arguments.idle, ready, stop), daemon=True)
            holder.start()
            if not ready.wait(120):
                raise SystemExit(f"benchmark: {arguments.idle} idle streams did not open")
            latency(f", {arguments.idle} idle streams open on the follower's replica")
            stop.set()
            holder.join(30)
            processes.stop(workers.pop())

            for count in (1, 4):
                workers = [processes.worker(f"worker-{count}-{index}", {"PLAN_SECONDS": str(arguments.plan_seconds)}) for index in range(count)]
                instances = [f"load-{count}-{index}" for index in range(arguments.jobs)]
                for instance in instances:
                    httpx.post(f"{a}/api/clients/bench/instances", json={"service": "redis", "instance": instance})
                started = time.perf_counter()
                jobs = [httpx.post(f"{(a, b)[index % 2]}/api/clients/bench/instances/{instance}/plan").json()["job"] for index, instance in enumerate(instances)]
                statuses = [ended(a, job)["status"] for job in jobs]
                elapsed = time.perf_counter() - started
                print(
                    f"{count} worker(s) x 2 at once: {arguments.jobs} jobs in {elapsed:.1f} s = {arguments.jobs / elapsed * 60:.0f} jobs/min "
                    f"({statuses.count('succeeded')} succeeded; stand-in plan {arguments.plan_seconds:g} s)"
                )
                for worker in workers:
                    processes.stop(worker)
        finally:
            processes.stop_all()
            s3.stop()
            redis.terminate()
            redis.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
