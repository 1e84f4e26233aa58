#!/usr/bin/env python3
"""Wall time of validating every default stack with the real Terraform core (tfcheck).

Synthesizes into a temporary folder, then times: preparing the provider schemas (cold, rebuilt
from the bindings; warm, from the cache) and ``terraform validate`` of all stacks, two at a time,
each command starting its stand-in providers, then with the providers started once and reattached
(``tfcheck.core.serving``, as the tests run it): wall time and CPU (every process) of each.

    python benchmarks/validate.py
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tfcheck.core import prepare, serving, stack_dirs, validate_all  # noqa: E402


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        outdir, cache = Path(folder) / "out", Path(folder) / "cache"
        environ = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
        subprocess.run([sys.executable, "-c", "import sys; from spawnit.stacks.synthesis import synthesize; synthesize(sys.argv[1])", str(outdir)], check=True, env=environ, cwd=ROOT, capture_output=True)
        started = time.monotonic()
        prepare(cache)
        cold = time.monotonic() - started
        started = time.monotonic()
        core = prepare(cache)
        warm = time.monotonic() - started
        folders = stack_dirs(outdir)
        runs = []
        for way in ("providers started by each command", "providers started once, reattached"):
            started, cpu = time.monotonic(), cpu_seconds()
            if way.endswith("reattached"):
                with serving(core) as served:
                    report = validate_all(served, folders)
            else:
                report = validate_all(core, folders)
            errors = sum(d.severity == "error" for diagnostics in report.values() for d in diagnostics)
            runs.append((way, time.monotonic() - started, cpu_seconds() - cpu, errors))
    print(f"schemas rebuilt from the bindings (cold)   {cold:6.1f} s")
    print(f"schemas from the cache (warm)              {warm:6.1f} s")
    print(f"validate {len(folders)} stacks, 2 at a time:")
    for way, wall, cpu, errors in runs:
        print(f"  {way:36} {wall:6.1f} s  ({wall / len(folders):.2f} s a stack, {cpu:5.1f} CPU-s, {errors} errors)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
