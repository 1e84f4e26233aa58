"""``spawnit worker``: runs queued jobs from Redis, beside any number of API replicas and other workers.

``--metrics-port`` serves the worker's Prometheus metrics (jobs by status, durations, drift checks, and
``spawnit_target_reachable{target}`` with ``spawnit_target_info{target,detail}``: whether each target
answers with the credentials configured for it, checked at start and every five minutes; the start
prints one line per target too).
Settings come from the environment, as for ``spawnit serve``: SPAWNIT_REDIS_URL (required), the store
(SPAWNIT_S3_* or SPAWNIT_DATA_DIR), SPAWNIT_JOB_STALE_AFTER, SPAWNIT_QUEUE_TIMEOUT. The first SIGTERM
or SIGINT stops taking jobs and lets the running ones end; a second one cancels them (tofu gets
SIGTERM, the state lock is released).
"""

from __future__ import annotations

import os
import signal
import threading
import time

from . import job_settings
from .engine import EngineError, engine_from_environment
from .jobs import JobManager
from .drift import track_deployments
from .monitor import ClientEvents, Metrics
from .notify import client_webhooks
from .store import store_from_environment
from .synthesizer import SynthWorker


TARGET_CHECK_SECONDS = 300.0


def _recheck_targets(environ: dict[str, str], metrics: Metrics, found: dict) -> None:
    """Every few minutes, each target again: the metrics follow, and a change is one line in the log."""
    from .live import describe_reachability, reachability

    while True:
        time.sleep(TARGET_CHECK_SECONDS)
        now_found = reachability(environ)
        metrics.on_reachability(now_found)
        for line, before in zip(describe_reachability(now_found), describe_reachability(found), strict=True):
            if line.split(" (")[0] != before.split(" (")[0]:
                print(f"spawnit worker: {line}", flush=True)
        found = now_found


def run_worker(concurrency: int, metrics_port: int | None = None) -> int:
    engine = engine_from_environment(dict(os.environ))
    if not engine.shared:
        raise EngineError(
            "SPAWNIT_REDIS_URL: not set; allowed: a redis:// URL (`spawnit worker` takes its jobs from Redis; without it, `spawnit serve` runs them itself)"
        )
    store = store_from_environment()
    jobs = JobManager(store, SynthWorker(), engine=engine, **job_settings(store))
    metrics = Metrics()
    track_deployments(store, ClientEvents(engine), metrics, jobs, notify=client_webhooks(store, jobs.vault).notify)
    if metrics_port is not None:  # this worker's jobs, for Prometheus (the API replicas count only their own)
        from prometheus_client import start_http_server

        start_http_server(metrics_port, registry=metrics.registry)
    signals = threading.Semaphore(0)

    def on_signal(signum: int, frame: object) -> None:
        signals.release()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    jobs.worker.start()
    engine.serve(jobs.execute, concurrency=concurrency)
    from ..tofu import describe_engine

    from .live import describe_reachability, reachability

    print(f"spawnit worker: {describe_engine(jobs.environ)}", flush=True)
    found = reachability(jobs.environ)
    metrics.on_reachability(found)
    for line in describe_reachability(found):
        print(f"spawnit worker: {line}", flush=True)
    threading.Thread(target=_recheck_targets, args=(jobs.environ, metrics, found), name="target-checks", daemon=True).start()
    print(f"spawnit worker: taking jobs ({concurrency} at a time), {len(jobs.cleaned)} left-over work folder(s) cleaned", flush=True)
    signals.acquire()
    engine.stop_serving()
    print(f"spawnit worker: stopping; {jobs.busy()} running job(s) end first (signal again to cancel them)", flush=True)
    while jobs.busy():
        if signals.acquire(timeout=0.2):
            for job_id in jobs.running_ids():
                jobs.cancel(job_id)
    jobs.close()
    jobs.worker.close()
    engine.close()
    return 0
