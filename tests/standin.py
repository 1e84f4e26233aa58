"""A stand-in OpenTofu: records its command line, working folder and backend; prints lines; obeys signals.

Behaviour from the environment: TOFU_EXIT_CODES ({"plan": 2}), TOFU_SLOW_<ACTION> (lines printed 0.1 s apart),
TOFU_IGNORE_TERM (ignore SIGTERM, so only SIGKILL stops it), TOFU_STAMP (each line ends with " @<epoch seconds>"),
TOFU_SHOW_JSON and TOFU_OUTPUT_JSON (what `show -json` and `output -json` print; default {}), TOFU_LOCK_FILE
(what init writes to .terraform.lock.hcl). A plan with -out= writes a plan file; an apply of a plan file records its content. Each call records its arguments, folder, backend, the files beside it,
its AWS_/SPAWNIT_/TF_/DOCKER_/PROXMOX_VE_/GO* environment (and SSH_AUTH_SOCK) and the content of any -backend-config file.
TOFU_CONTROL names a JSON file of the same settings, read at each run: tests change a long-running
server's stand-in through it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

STAND_IN = """#!{python}
import json, os, signal, sys, time
log = os.environ["TOFU_LOG"]
if sys.argv[1:2] == ["version"]:
    print("OpenTofu v1.10.6 (stand-in)")
    sys.exit(0)
settings = dict(os.environ)
if os.path.exists(os.environ.get("TOFU_CONTROL", "")):
    settings.update(json.load(open(os.environ["TOFU_CONTROL"])))
def record(entry):
    with open(log, "a") as handle:
        handle.write(json.dumps(entry) + "\\n")
backend = json.load(open("cdk.tf.json"))["terraform"].get("backend")
backend_config = [open(arg.split("=", 1)[1]).read() for arg in sys.argv[1:] if arg.startswith("-backend-config=")]
environ = {{key: value for key, value in os.environ.items() if key.startswith(("AWS_", "SPAWNIT_", "TF_", "DOCKER_", "PROXMOX_VE_", "GO")) or key == "SSH_AUTH_SOCK"}}
files = sorted(os.listdir("."))
plan_file = open(sys.argv[-1]).read() if sys.argv[1] == "apply" and os.path.isfile(sys.argv[-1]) else None  # apply PLANFILE
record({{"argv": sys.argv[1:], "cwd": os.getcwd(), "backend": backend, "started": time.time(), "pid": os.getpid(),
        "environ": environ, "backend_config": backend_config, "files": files, "plan_file": plan_file}})
def on_term(signum, frame):
    record({{"signal": "SIGTERM"}})
    print("Interrupt received, stopping", flush=True)
    sys.exit(130)
if settings.get("TOFU_IGNORE_TERM"):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, on_term)
action = sys.argv[1]
for arg in sys.argv[2:]:  # plan -out=FILE writes the plan file (the stand-in's: its arguments and a stamp)
    if action == "plan" and arg.startswith("-out="):
        open(arg[5:], "w").write(json.dumps({{"stand-in plan": sys.argv[1:], "at": time.time()}}))
if action == "init" and settings.get("TOFU_LOCK_FILE"):  # init writes the provider lock file
    open(".terraform.lock.hcl", "w").write(settings["TOFU_LOCK_FILE"])
if action in ("show", "output"):  # JSON on stdout, as the engine's -json commands print it
    print(settings.get("TOFU_" + action.upper() + "_JSON", "{{}}"), flush=True)
    record({{"finished": action, "cwd": os.getcwd(), "at": time.time()}})
    sys.exit(0)
print(f"tofu {{action}}: starting", flush=True)
stamp = (lambda: f" @{{time.time()}}") if settings.get("TOFU_STAMP") else (lambda: "")
for index in range(int(settings.get("TOFU_SLOW_" + action.upper(), "0"))):
    print(f"working {{index}}{{stamp()}}", flush=True)
    time.sleep(0.1)
codes = json.loads(settings.get("TOFU_EXIT_CODES", "{{}}"))
print(f"tofu {{action}}: done", flush=True)
record({{"finished": action, "cwd": os.getcwd(), "at": time.time()}})
sys.exit(codes.get(action, 0))
"""


def stand_in_tofu(tmp_path: Path) -> tuple[dict[str, str], Callable[[], list[dict]]]:
    """A stand-in `tofu` first on PATH: (environment to run with, function reading the calls it received)."""
    binary = tmp_path / "bin" / "tofu"
    binary.parent.mkdir()
    binary.write_text(STAND_IN.format(python=sys.executable))
    binary.chmod(0o755)
    log = tmp_path / "tofu.log"
    environ = {**os.environ, "PATH": f"{binary.parent}{os.pathsep}{os.environ['PATH']}", "TOFU_LOG": str(log)}

    def calls() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    return environ, calls
