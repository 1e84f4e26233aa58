#!/usr/bin/env python3
"""The orchestrator's figures, against a stand-in tofu (no cloud, no Docker):

- request-to-job-start latency with a warm synthesis worker: from POST .../apply
  to the job's first tofu command (target: under 1 s for a catalog service);
- the drift loop's cost with 100 deployed instances: wall time of one round and
  CPU time of the API process, at the default concurrency (2) and at 8.

    python benchmarks/api.py [--instances 100] [--plan-seconds 0.2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import warnings

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
from fastapi.testclient import TestClient  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from spawnit.api import create_app  # noqa: E402
from spawnit.api.auth import AuthSettings  # noqa: E402
from spawnit.api.jobs import JobManager  # noqa: E402
from spawnit.api.store import LocalObjectStore, Store  # noqa: E402
from spawnit.api.synthesizer import SynthWorker  # noqa: E402

from tofu_standin import stand_in_path  # noqa: E402 - benchmarks/ is on sys.path when run as a script

STAND_IN = """#!{python}
import os, sys, time
action = sys.argv[1]
if action == "plan":
    time.sleep(float(os.environ.get("PLAN_SECONDS", "0.2")))
print(f"tofu {{action}} done", flush=True)
"""


def wait(api: TestClient, job_id: str) -> dict:
    while True:
        record = api.get(f"/api/jobs/{job_id}").json()
        if record["status"] not in ("queued", "running"):
            return record
        time.sleep(0.01)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--plan-seconds", type=float, default=0.2, help="how long one stand-in plan takes")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        path = stand_in_path(root, STAND_IN)
        environ = {**os.environ, "PATH": path, "PLAN_SECONDS": str(arguments.plan_seconds)}
        store = Store(LocalObjectStore(root / "store"))
        worker = SynthWorker()
        started = time.perf_counter()
        worker.start()
        warmup = time.perf_counter() - started
        jobs = JobManager(store, worker, workdir=root / "work", environ=environ)
        app = create_app(store=store, jobs=jobs, auth=AuthSettings("off"))
        with TestClient(app) as api:
            latencies = []
            for index in range(10):
                instance = f"db-{index}"
                api.post("/api/clients/bench/instances", json={"service": "postgresql", "instance": instance})
                sent = time.perf_counter()
                job = api.post(f"/api/clients/bench/instances/{instance}/apply", json={"auto_approve": True}).json()["job"]
                while not any(str(e["data"]).startswith("$ tofu init") for e in jobs.snapshot(job)):
                    time.sleep(0.002)
                latencies.append(time.perf_counter() - sent)
                wait(api, job)
            print(f"synthesis worker warm-up: {warmup:.1f} s (once per API process)")
            print(
                f"request-to-job-start, warm worker: median {statistics.median(latencies) * 1000:.0f} ms, "
                f"max {max(latencies) * 1000:.0f} ms (target < 1000 ms): {'met' if max(latencies) < 1 else 'MISSED'}"
            )
            for index in range(10, arguments.instances):
                api.post("/api/clients/bench/instances", json={"service": "redis", "instance": f"cache-{index}"})
                wait(api, api.post(f"/api/clients/bench/instances/cache-{index}/apply", json={"auto_approve": True}).json()["job"])
            for concurrency in (2, 8):
                app.state.drift.concurrency = concurrency
                cpu, wall = time.process_time(), time.perf_counter()
                results = app.state.drift.check_all()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                print(
                    f"drift round, {len(results)} instances, concurrency {concurrency}: {wall:.1f} s wall, "
                    f"{cpu:.1f} s CPU in the API process ({wall / len(results) * 1000:.0f} ms per instance)"
                )
        worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
