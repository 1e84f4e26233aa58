#!/usr/bin/env python3
"""The whole loop's figures with the real engine and the real AWS provider against moto (the tests'
emulator, tests/emulator.py): a catalog `postgresql` instance on the `aws` target, run the way a
job runs it (the job's CLI configuration, plugin cache and mirror, TF_VAR_ secret):

- `init` with a cold plugin cache, then with a warm one (a new working folder, as each job has);
- `plan -out`, `apply`, a second `plan` (no change), `destroy`: wall-clock seconds;
- the resident memory of the provider process (peak, sampled every 0.1 s) during the first plan.

    python benchmarks/engine_loop.py [--mirror /opt/tf-plugins] [--engine terraform]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def timed(arguments: list[str], cwd: Path, environ: dict[str, str], codes: tuple[int, ...] = (0,)) -> float:
    started = time.perf_counter()
    result = subprocess.run(arguments, cwd=cwd, env=environ, capture_output=True, text=True)
    if result.returncode not in codes:
        raise SystemExit(f"{' '.join(arguments[:2])} exited {result.returncode}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def provider_peak(stop: threading.Event, peak: list[int]) -> None:
    while not stop.wait(0.1):
        for process in psutil.process_iter(["name", "memory_info"]):
            if (process.info["name"] or "").startswith("terraform-provi") and process.info["memory_info"]:
                peak[0] = max(peak[0], process.info["memory_info"].rss)


def main() -> int:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    from conftest import find_aws_provider_mirror, free_port
    from emulator import Emulator

    from spawnit.api.toolchain import Toolchain
    from spawnit.api.synthesizer import SynthWorker
    from spawnit.tofu import find_engine

    found = find_aws_provider_mirror()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", default=str(found[0]) if found else None, help="root of a filesystem mirror holding hashicorp/aws")
    parser.add_argument("--engine", default=None, help="engine binary (default: as jobs find it)")
    options = parser.parse_args()
    if not options.mirror or not found:
        print("no AWS provider mirror found: pass --mirror", file=sys.stderr)
        return 2
    engine = find_engine({**os.environ, **({"SPAWNIT_TOFU": options.engine} if options.engine else {})})
    emulator = Emulator(free_port(), region="eu-west-3")
    worker = SynthWorker()
    with tempfile.TemporaryDirectory(prefix="spawnit-bench-") as folder:
        root = Path(folder)
        toolchain = Toolchain.from_environment(
            {"SPAWNIT_PROVIDER_MIRROR": options.mirror, "SPAWNIT_PROVIDER_VERSIONS": f"hashicorp/aws={found[1]}", "SPAWNIT_AWS_ENDPOINT": emulator.endpoint}, root
        )
        toolchain.prepare()
        stack = worker.synth(
            service="postgresql",
            parameters={"target": "aws", "allowed_cidrs": ["203.0.113.0/24"]},
            client="bench",
            instance="pg",
            outdir=str(root / "synth"),
            state={"kind": "local", "path": str(root / "state" / "terraform.tfstate")},
            **toolchain.synth_options(),
        )
        worker.close()
        cli_config = root / "cli.tfrc"
        cli_config.write_text(toolchain.cli_config())
        environ = toolchain.environment(
            {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}, cli_config, {"password": "benchmark-password-0123"}
        )
        figures: dict[str, float] = {}
        cold, warm = root / "cold", root / "warm"
        shutil.copytree(stack, cold)
        shutil.copytree(stack, warm)
        figures["init, cold plugin cache"] = timed([engine.path, "init", "-input=false", "-no-color"], cold, environ)
        shutil.copy(cold / ".terraform.lock.hcl", warm / ".terraform.lock.hcl")  # as a job gets it from the store
        figures["init, warm plugin cache"] = timed([engine.path, "init", "-input=false", "-no-color"], warm, environ)
        stop, peak = threading.Event(), [0]
        sampler = threading.Thread(target=provider_peak, args=(stop, peak), daemon=True)
        sampler.start()
        figures["plan (changes)"] = timed([engine.path, "plan", "-input=false", "-no-color", "-detailed-exitcode", "-out=tfplan"], warm, environ, (2,))
        stop.set()
        sampler.join()
        figures["apply"] = timed([engine.path, "apply", "-input=false", "-no-color", "-auto-approve", "tfplan"], warm, environ)
        figures["second plan (no change)"] = timed([engine.path, "plan", "-input=false", "-no-color", "-detailed-exitcode"], warm, environ)
        figures["destroy"] = timed([engine.path, "destroy", "-input=false", "-no-color", "-auto-approve"], warm, environ)
    emulator.stop()
    print(f"engine: {engine}; provider hashicorp/aws {found[1]} from {options.mirror}; moto {emulator.endpoint}")
    for name, seconds in figures.items():
        print(f"{name:<28} {seconds:6.1f} s")
    print(f"{'provider process, peak RSS':<28} {peak[0] / 2**20:6.0f} MB")
    print(json.dumps({"seconds": {name: round(value, 2) for name, value in figures.items()}, "provider_peak_rss_mb": round(peak[0] / 2**20)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
