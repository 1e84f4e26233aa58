"""Runs the engine (OpenTofu, or Terraform) in a synthesized stack's folder: init, then plan, apply or destroy.

Which engine: ``$SPAWNIT_TOFU`` when set, else ``tofu`` on PATH, else ``terraform`` on PATH. Both take
the same commands and flags SpawnIt uses (``init``, ``plan -detailed-exitcode -out``, ``show -json``,
``apply``, ``destroy``, ``output -json``) and read the S3 backend's ``use_lockfile`` (OpenTofu 1.10,
Terraform 1.11); the stacks' ``required_version`` (``>= 1.10.0``) is checked by whichever runs them.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

TOFU_ENV = "SPAWNIT_TOFU"
ENGINES = ("tofu", "terraform")  # looked for on PATH in this order
INSTALL_HINT = (
    "OpenTofu is not installed (no 'tofu' nor 'terraform' on PATH). Install it from https://opentofu.org/docs/intro/install/ "
    "(for example: curl -fsSL https://get.opentofu.org/install-opentofu.sh | sh -s -- --install-method deb), "
    f"or point {TOFU_ENV} at an OpenTofu or Terraform (1.11 or later) binary."
)
ACTIONS = ("plan", "apply", "destroy")


# The engine and its provider plugins are Go programs whose commands are short and whose memory is mostly
# the providers' schemas (the AWS provider's ~500 MB, rebuilt by each command). Go's default collector
# (GOGC=100) runs again each time the heap grows by half, reclaiming little: with the collector off until
# the heap nears a memory limit (Go's GC guide, "Memory limit": GOGC=off with GOMEMLIMIT collects only near
# the limit), a plan of an AWS stack costs ~30 % less CPU (measured with Terraform 1.11 and AWS provider
# 5.100: 5.2 -> 3.6 CPU-s) for ~120 MB more per process. A caller's own GOGC or GOMEMLIMIT wins.
ENGINE_RUNTIME = {"GOGC": "off", "GOMEMLIMIT": "1GiB"}


def engine_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` with the engine's Go runtime settings (:data:`ENGINE_RUNTIME`) where it sets none."""
    if "GOGC" in environ or "GOMEMLIMIT" in environ:
        return dict(environ)
    return {**ENGINE_RUNTIME, **environ}


class TofuNotFound(RuntimeError):
    """No OpenTofu binary: the message says how to install one."""


def find_tofu(environ: Mapping[str, str] | None = None) -> str:
    """Path of the engine: ``$SPAWNIT_TOFU``, else ``tofu``, else ``terraform`` on PATH."""
    environ = os.environ if environ is None else environ
    configured = environ.get(TOFU_ENV)
    if configured:
        if shutil.which(configured, path=environ.get("PATH")):
            return shutil.which(configured, path=environ.get("PATH")) or configured
        raise TofuNotFound(f"{TOFU_ENV}={configured!r} is not an executable. {INSTALL_HINT}")
    for name in ENGINES:
        found = shutil.which(name, path=environ.get("PATH"))
        if found:
            return found
    raise TofuNotFound(INSTALL_HINT)


@dataclass(frozen=True)
class Engine:
    """The engine jobs run: its path, its name (``OpenTofu`` or ``Terraform``) and its version."""

    path: str
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name} {self.version} ({self.path})"


@functools.lru_cache(maxsize=8)
def _engine_at(path: str, mtime: float) -> Engine:
    try:
        first = subprocess.run([path, "version"], capture_output=True, text=True, timeout=30, env={**os.environ, "CHECKPOINT_DISABLE": "1"}).stdout
    except (OSError, subprocess.TimeoutExpired) as error:
        raise TofuNotFound(f"{path}: cannot run 'version' ({error}). {INSTALL_HINT}") from None
    found = re.search(r"^(OpenTofu|Terraform) v(\S+)", first, re.MULTILINE)
    if not found:
        return Engine(path, Path(path).name, "unknown")
    return Engine(path, found.group(1), found.group(2))


def find_engine(environ: Mapping[str, str] | None = None) -> Engine:
    """The engine :func:`find_tofu` picks, with its name and version (``<binary> version``)."""
    path = find_tofu(environ)
    return _engine_at(path, Path(path).stat().st_mtime)


def describe_engine(environ: Mapping[str, str] | None = None) -> str:
    """One line for ``--version``, ``list`` and the worker: which engine jobs run, or what is missing."""
    try:
        return f"engine: {find_engine(environ)}"
    except TofuNotFound:
        return f"engine: none found (install OpenTofu, or set {TOFU_ENV})"


# What a backend block's identity is: a change of one of these needs -reconfigure or -migrate-state.
_BACKEND_IDENTITY = ("bucket", "key", "region", "path", "endpoint", "endpoints")


def configured_backend(stack_dir: Path) -> tuple[str, dict]:
    """(type, settings) of the backend block a synthesized stack names; ``local`` when it names none."""
    backend = json.loads((stack_dir / "cdk.tf.json").read_text()).get("terraform", {}).get("backend") or {"local": {}}
    return next(iter(backend.items()))


def backend_change(stack_dir: Path) -> str | None:
    """How the stack's backend differs from the one its last ``tofu init`` set up (recorded in
    ``.terraform/terraform.tfstate``), or None: never initialized, or unchanged."""
    try:
        initialized = json.loads((stack_dir / ".terraform" / "terraform.tfstate").read_text()).get("backend") or {}
        kind, settings = configured_backend(stack_dir)
    except (OSError, ValueError):
        return None
    if not initialized:
        return None
    if initialized.get("type") != kind:
        return f"{initialized.get('type')} -> {kind}"
    before = initialized.get("config") or {}
    changed = [key for key in _BACKEND_IDENTITY if key in settings and before.get(key) != settings[key]]
    return f"{kind} {', '.join(changed)} changed" if changed else None


def action_arguments(action: str, *, auto_approve: bool = False, extra: Sequence[str] = ()) -> list[str]:
    """Arguments after the binary for one action (``plan``, ``apply`` or ``destroy``)."""
    if action not in ACTIONS:
        raise ValueError(f"action: {action!r} is not allowed; allowed: {', '.join(ACTIONS)}")
    arguments = [action, "-input=false"]
    if action == "plan":
        arguments.append("-detailed-exitcode")
    elif auto_approve:
        arguments.append("-auto-approve")
    return arguments + list(extra)


def run_action(
    stack_dir: Path,
    action: str,
    *,
    auto_approve: bool = False,
    extra: Sequence[str] = (),
    init_extra: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> int:
    """``tofu init`` then the action in ``stack_dir``, output streamed as it comes; returns tofu's exit code.

    ``plan`` uses ``-detailed-exitcode``: 0 no changes, 2 changes, 1 error.
    """
    if not (stack_dir / "cdk.tf.json").is_file():
        raise FileNotFoundError(f"stack folder: {str(stack_dir)!r} has no cdk.tf.json; run 'spawnit synth' first")
    binary = find_tofu(environ)
    env = engine_environment(os.environ if environ is None else environ)
    env.setdefault("TF_IN_AUTOMATION", "1")
    for arguments in (["init", "-input=false", *init_extra], action_arguments(action, auto_approve=auto_approve, extra=extra)):
        print(f"$ tofu {' '.join(arguments)}  (in {stack_dir})", file=sys.stderr, flush=True)
        code = subprocess.call([binary, *arguments], cwd=stack_dir, env=env)
        if arguments[0] == "init" and code != 0:
            return code
    return code


SAVED_PLAN = ".spawnit-plan"


def run_plan_json(
    stack_dir: Path, *, init_extra: Sequence[str] = (), environ: Mapping[str, str] | None = None
) -> tuple[int, dict | None]:
    """``tofu init``, ``plan -out`` and ``show -json`` of that plan in ``stack_dir``: the engine's own output
    goes to stderr, so that stdout carries only what the caller prints. Returns the plan's exit code
    (0 no changes, 2 changes, 1 error) and the plan's JSON (None if the plan failed)."""
    if not (stack_dir / "cdk.tf.json").is_file():
        raise FileNotFoundError(f"stack folder: {str(stack_dir)!r} has no cdk.tf.json; run 'spawnit synth' first")
    binary = find_tofu(environ)
    env = engine_environment(os.environ if environ is None else environ)
    env.setdefault("TF_IN_AUTOMATION", "1")
    plan = action_arguments("plan", extra=[f"-out={SAVED_PLAN}"])
    for arguments in (["init", "-input=false", *init_extra], plan):
        print(f"$ tofu {' '.join(arguments)}  (in {stack_dir})", file=sys.stderr, flush=True)
        code = subprocess.call([binary, *arguments], cwd=stack_dir, env=env, stdout=sys.stderr)
        if code not in (0, 2) or (arguments[0] == "init" and code != 0):
            return code, None
    shown = subprocess.run([binary, "show", "-json", SAVED_PLAN], cwd=stack_dir, env=env, capture_output=True, text=True)
    (stack_dir / SAVED_PLAN).unlink(missing_ok=True)  # it holds the stack's secrets in clear
    if shown.returncode != 0:
        sys.stderr.write(shown.stderr)
        return 1, None
    return code, json.loads(shown.stdout)
