#!/usr/bin/env python3
"""How long the command line makes its user wait, in one run:

- a bad invocation until its error (the provider runtime must not load);
- a cold synthesis of every default stack, and the same synthesis again (cached);
- ``spawnit plan prod`` until OpenTofu starts (a stand-in records when), cold and cached.

    python benchmarks/cli.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tofu_standin import stand_in_path  # noqa: E402 - benchmarks/ is on sys.path when run as a script

STAND_IN = """#!{python}
import json, os, sys, time
with open(os.environ["TOFU_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "at": time.time()}}) + "\\n")
"""


def timed(arguments: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    started = time.time()
    result = subprocess.run([sys.executable, "-m", "spawnit", *arguments], cwd=cwd, env=env, capture_output=True, text=True)
    return time.time() - started, result


def until_tofu(arguments: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    log.unlink(missing_ok=True)
    started = time.time()
    subprocess.run([sys.executable, "-m", "spawnit", *arguments], cwd=cwd, env=env, capture_output=True, check=True)
    first = json.loads(log.read_text().splitlines()[0])
    return first["at"] - started


def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        path = stand_in_path(work, STAND_IN)
        env = {key: value for key, value in os.environ.items() if not key.startswith("SPAWNIT_")}
        env |= {"PATH": path, "TOFU_LOG": str(work / "tofu.log"), "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
        error, result = timed(["synth", "--service", "oracle"], work, env)
        assert result.returncode == 2, result.stderr
        cold, _ = timed(["synth"], work, env)
        cached, _ = timed(["synth"], work, env)
        plan_cold = until_tofu(["plan", "prod", "--force"], work, env, work / "tofu.log")
        plan_cached = until_tofu(["plan", "prod"], work, env, work / "tofu.log")
    print(f"bad invocation to its error          {error:6.2f} s")
    print(f"synth, cold                          {cold:6.2f} s")
    print(f"synth, cached                        {cached:6.2f} s  (cached/cold {cached / cold:.2f})")
    print(f"plan prod to tofu start, cold        {plan_cold:6.2f} s")
    print(f"plan prod to tofu start, cached      {plan_cached:6.2f} s  (cached/cold {plan_cached / plan_cold:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
