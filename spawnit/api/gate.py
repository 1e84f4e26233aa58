"""The policy gate on a plan, shown beside its diff: security (Checkov on the planned values) and cost
(the plan's monthly cost against the client's budget). A failing check blocks the apply of that plan
with its reasons; an admin may override a failing check with a written reason, recorded, one check at a
time: an override never drops another check (:func:`passed`).

**Security.** Checkov's ``terraform_plan`` framework reads the engine's JSON plan (``show -json``), so it
judges the values the apply would write, not our JSON's expressions. Checkov's inline suppressions do not
work with cdktf's JSON (checkov#4634), so findings are accepted here, cdk-nag style, per check and
resource (a resource type or an address) with a reason, in ``assets/gate/accepted.yaml``; a finding not
accepted fails the check. Checkov runs from ``SPAWNIT_CHECKOV`` (its path), else ``checkov`` on PATH,
else the development set-up's ``.venv-checkov``; without it the check fails, saying so.

**Cost.** The offline price table (:mod:`spawnit.cost`) prices the synthesized stack the plan applies:
``after_usd`` a month, against ``before_usd`` (what the instance's last apply costs), the delta, and the
client's total with every other instance at its deployed cost. Over the client's budget (set by an admin
with ``PUT /api/clients/{client}/budget``, else ``SPAWNIT_CLIENT_BUDGET_USD``; none: no limit) fails.
A stack whose region has no price table is not priced: the check says so and does not block.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..cost import Assumptions, CostError, PriceTable, StackEstimator, stack_region

ACCEPTED_FILE = Path(__file__).resolve().parents[1] / "assets" / "gate" / "accepted.yaml"
CHECKS = ("security", "cost")
MIN_REASON = 10
CHECKOV_TIMEOUT = 300


class GateError(ValueError):
    """An override or budget request that cannot be taken (the API answers 422)."""


def accepted_findings(path: Path = ACCEPTED_FILE) -> dict[str, dict[str, str]]:
    """check id -> resource (type or address) -> reason."""
    document = yaml.safe_load(path.read_text()) or {}
    for check, resources in document.items():
        if not isinstance(resources, dict) or not all(isinstance(reason, str) and len(reason) >= MIN_REASON for reason in resources.values()):
            raise GateError(f"{path.name}: {check}: each accepted resource needs a reason of at least {MIN_REASON} characters")
    return document


def find_checkov(environ: Mapping[str, str]) -> str | None:
    configured = environ.get("SPAWNIT_CHECKOV")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    development = Path(__file__).resolve().parents[2] / ".venv-checkov" / "bin" / "checkov"
    return shutil.which("checkov", path=environ.get("PATH")) or (str(development) if development.is_file() else None)


# ---- Checkov kept warm -----------------------------------------------------------------------------------
# Importing Checkov costs ~3 CPU-s of its ~3.5 per check. Where ``checkov`` is a Python script, one process
# per interpreter loads it once (warm_checkov.py, run by Checkov's own interpreter) and forks a child per
# check, which runs with the check's own environment: ~0.5 CPU-s each after the first. Checks go one at a
# time through it; a process that dies or overruns is stopped and the next check starts another.
# Elsewhere Checkov runs as a command.

WARM_SCRIPT = Path(__file__).with_name("warm_checkov.py")


def _interpreter(checkov: str) -> str | None:
    """The Python interpreter a ``checkov`` script names on its first line, if it is one."""
    try:
        with open(checkov, "rb") as script:
            first = script.readline(512).decode(errors="replace").strip()
    except OSError:
        return None
    if not first.startswith("#!"):
        return None
    command = first[2:].split()
    if command and command[0].endswith("/env") and len(command) > 1:
        command = command[1:]
    return shutil.which(command[0]) if command and Path(command[0]).name.startswith("python") else None


class WarmCheckov:
    """One warm Checkov process (see above): :meth:`run` a check through it, :meth:`close` it."""

    def __init__(self, python: str, env: Mapping[str, str]) -> None:
        self.python, self.env = python, dict(env)  # what it starts with; each check brings its own
        self.process: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        process = subprocess.Popen(
            [self.python, str(WARM_SCRIPT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=self.env, start_new_session=True
        )
        if json.loads(self._answer(process, CHECKOV_TIMEOUT) or "{}").get("ready") is not True:
            self._stop(process)
            raise OSError("the warm Checkov process did not start")
        return process

    @staticmethod
    def _answer(process: subprocess.Popen, timeout: float) -> str:
        """The next line the process writes; TimeoutExpired after ``timeout`` seconds."""
        ready, _, _ = select.select([process.stdout], [], [], timeout)
        if not ready:
            raise subprocess.TimeoutExpired(process.args, timeout)
        return process.stdout.readline()

    @staticmethod
    def _stop(process: subprocess.Popen) -> None:
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)  # the process and a check's child with it
        process.wait()
        for stream in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                stream.close()

    def run(self, arguments: list[str], env: Mapping[str, str] | None = None, timeout: float = CHECKOV_TIMEOUT) -> tuple[int, str]:
        """(Checkov's exit code, what it printed) for ``arguments``, run with ``env`` (else the start's)."""
        request = {"argv": arguments, "env": dict(self.env if env is None else env)}
        with self.lock:
            reused = self.process is not None and self.process.poll() is None
            try:
                return self._ask(request, timeout)
            except OSError:
                if not reused:
                    raise
                return self._ask(request, timeout)  # it had died since the last check: once more, in a new one

    def _ask(self, request: dict, timeout: float) -> tuple[int, str]:
        if self.process is None or self.process.poll() is not None:
            self.process = self._start()
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self._answer(self.process, timeout)
            if not line:
                raise OSError("the warm Checkov process ended")
            answer = json.loads(line)
        except BaseException:
            self._stop(self.process)
            self.process = None
            raise
        return answer["code"], answer["stdout"]

    def close(self) -> None:
        with self.lock:
            if self.process is not None:
                self._stop(self.process)
                self.process = None


_WARM: dict[str, WarmCheckov] = {}  # by interpreter
_WARM_LOCK = threading.Lock()


@atexit.register
def close_warm_checkov() -> None:
    """Stop every warm Checkov process of this process."""
    with _WARM_LOCK:
        for warm in _WARM.values():
            warm.close()
        _WARM.clear()


def run_checkov(checkov: str, arguments: list[str], env: Mapping[str, str]) -> tuple[int, str]:
    """(exit code, standard output) of Checkov with ``arguments``: through a warm process where ``checkov``
    is a Python script, else as a command."""
    python = _interpreter(checkov)
    if python is None or not hasattr(os, "fork"):
        result = subprocess.run([checkov, *arguments], capture_output=True, text=True, timeout=CHECKOV_TIMEOUT, env=dict(env))
        return result.returncode, result.stdout
    with _WARM_LOCK:
        warm = _WARM.get(python) or _WARM.setdefault(python, WarmCheckov(python, env))
    return warm.run(arguments, env)


def security_check(plan_file: Path, environ: Mapping[str, str], accepted: Mapping[str, Mapping[str, str]] | None = None) -> dict[str, Any]:
    """Checkov over the JSON plan at ``plan_file`` (it holds secrets: keep it in the job's private folder).
    Each finding names its check, title and resource, and the reason it is accepted, if it is."""
    accepted = accepted_findings() if accepted is None else accepted
    checkov = find_checkov(environ)
    if checkov is None:
        return {"name": "security", "passed": False, "findings": [], "reasons": ["Checkov is not installed here; set SPAWNIT_CHECKOV to its path"]}
    arguments = ["--file", str(plan_file), "--framework", "terraform_plan", "--output", "json", "--quiet", "--compact", "--skip-download"]
    env = {"PATH": environ.get("PATH", os.defpath), "HOME": environ.get("HOME", "/tmp"), "BC_SKIP_MAPPING": "TRUE"}  # no call home
    try:
        code, stdout = run_checkov(checkov, arguments, env)
        report = json.loads(stdout) if stdout.strip() else {}
    except (OSError, ValueError, subprocess.TimeoutExpired) as error:
        return {"name": "security", "passed": False, "findings": [], "reasons": [f"Checkov could not run: {type(error).__name__}"]}
    reports = report if isinstance(report, list) else [report]
    # A report per framework ({"results": ..., "summary": ...}), or only a summary when no resource concerned any check.
    summaries = [item.get("summary", item) for item in reports if isinstance(item, dict)]
    if code not in (0, 1) or not summaries or not all("failed" in summary for summary in summaries):
        return {"name": "security", "passed": False, "findings": [], "reasons": [f"Checkov failed (exit {code})"]}
    if any(summary.get("parsing_errors") for summary in summaries):
        return {"name": "security", "passed": False, "findings": [], "reasons": ["Checkov could not read the plan"]}
    findings, seen = [], set()
    for item in reports:
        for failed in (item.get("results") or {}).get("failed_checks", []):
            address = failed.get("resource_address") or failed.get("resource", "")
            if (failed["check_id"], address) in seen:  # a graph check's finding was once listed twice
                continue
            seen.add((failed["check_id"], address))
            reasons = accepted.get(failed["check_id"], {})
            reason = reasons.get(address) or reasons.get(address.split(".")[0])
            findings.append({"check": failed["check_id"], "title": failed.get("check_name", ""), "resource": address, "accepted": reason})
    findings.sort(key=lambda finding: (finding["accepted"] is not None, finding["check"], finding["resource"]))
    blocking = [finding for finding in findings if finding["accepted"] is None]
    return {
        "name": "security",
        "passed": not blocking,
        "findings": findings,
        "reasons": [f"{finding['check']} on {finding['resource']}: {finding['title']}" for finding in blocking],
    }


def monthly_cost(document: Mapping[str, Any], name: str) -> float | None:
    """The stack's monthly cost from the offline price table; None when its region has no price table."""
    region = stack_region(document)
    try:
        prices = PriceTable.bundled(region or "eu-west-3")
        return round(StackEstimator(name, document, prices, Assumptions()).estimate().total_usd, 2)
    except (CostError, FileNotFoundError, KeyError):
        return None


def cost_check(after_usd: float | None, before_usd: float, others_usd: float, budget_usd: float | None) -> dict[str, Any]:
    check: dict[str, Any] = {"name": "cost", "before_usd": round(before_usd, 2), "after_usd": after_usd, "budget_usd": budget_usd, "reasons": []}
    if after_usd is None:
        return {**check, "passed": True, "delta_usd": None, "client_total_usd": None, "note": "not priced: the stack's region has no offline price table"}
    total = round(others_usd + after_usd, 2)
    check |= {"delta_usd": round(after_usd - before_usd, 2), "client_total_usd": total}
    if budget_usd is not None and total > budget_usd:
        check["reasons"].append(
            f"the client's instances would cost {total:.2f} USD a month ({after_usd - before_usd:+.2f} with this plan), over its budget of {budget_usd:.2f} USD"
        )
    return {**check, "passed": not check["reasons"]}


def passed(gate: Mapping[str, Any]) -> bool:
    """Every check passed or was overridden by name: an override of one check leaves the others in force."""
    overridden = {override["check"] for override in gate.get("overrides", [])}
    return all(check["passed"] or check["name"] in overridden for check in gate["checks"])


def blocking_reasons(gate: Mapping[str, Any]) -> list[str]:
    overridden = {override["check"] for override in gate.get("overrides", [])}
    return [f"{check['name']}: {reason}" for check in gate["checks"] if not check["passed"] and check["name"] not in overridden for reason in check["reasons"]]


def override(gate: dict[str, Any], check: str, reason: str, by: str, at: str) -> dict[str, Any]:
    """Record an admin's override of one failing check, with its reason."""
    names = [item["name"] for item in gate["checks"]]
    if check not in names:
        raise GateError(f"check: {check!r} is not allowed; allowed: {', '.join(names)}")
    failing = next(item for item in gate["checks"] if item["name"] == check)
    if failing["passed"]:
        raise GateError(f"check: {check!r} passed; only a failing check can be overridden")
    if len(reason.strip()) < MIN_REASON:
        raise GateError(f"reason: {reason.strip()[:40]!r} is not allowed; allowed: a written reason of at least {MIN_REASON} characters")
    if any(item["check"] == check for item in gate.get("overrides", [])):
        raise GateError(f"check: {check!r} is already overridden")
    gate.setdefault("overrides", []).append({"check": check, "reason": reason.strip(), "by": by, "at": at})
    gate["passed"] = passed(gate)
    return gate
