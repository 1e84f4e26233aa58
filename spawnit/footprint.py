"""Monthly greenhouse-gas footprint of synthesized stacks, by Boavizta's method and reference data.

What runs is read as the cost report reads it (:class:`spawnit.cost.StackReader`): instances,
Auto Scaling groups averaged over their schedules, databases (a Multi-AZ standby counts as a
second machine, a database stopped at night does not use power), cache nodes, EKS nodes, and
Fargate tasks as a share of an m5.large (2 vCPU, 8 GB: Fargate's hosts are not published).
Each machine's impact comes from ``boaviztapi`` (AWS instance archetypes, the region's grid
intensity, a workload of ``load_percent``): *embedded* is its share of the hardware's
manufacture over the month, *use* the electricity it draws. Run offline, in the virtualenv
that holds boaviztapi (``.venv-boavizta``; its pins clash with SpawnIt's), as a separate process.

Managed services whose hardware AWS does not describe (load balancers, NAT gateways, S3,
CloudFront, the EKS control plane...) are listed as not estimated; an instance type Boavizta
does not know is reported, never zero.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .cost import CostError, Machines, StackReader, _construct_path, stack_region

HOURS = 730  # a month, as the cost report counts it
FARGATE_HOST = ("m5.large", 2)  # the archetype a Fargate task is a share of, and its vCPUs
COMPUTE = {
    "aws_instance": "machines_instance",
    "aws_autoscaling_group": "machines_autoscaling_group",
    "aws_db_instance": "machines_db_instance",
    "aws_elasticache_replication_group": "machines_elasticache_replication_group",
    "aws_eks_node_group": "machines_eks_node_group",
    "aws_ecs_service": "machines_ecs_service",
}
# Resources that consume hardware AWS does not describe: named in the report, not estimated.
MANAGED = {
    "aws_lb": "load balancer",
    "aws_nat_gateway": "NAT gateway",
    "aws_s3_bucket": "object storage",
    "aws_cloudfront_distribution": "CDN",
    "aws_eks_cluster": "EKS control plane",
    "aws_ebs_volume": "block storage",
    "aws_backup_vault": "backup storage",
    "kubernetes_service_v1": "load balancer made by the cluster",
}


class FootprintError(CostError):
    """The footprint cannot be computed (no Boavizta environment, a failed run)."""


@dataclass
class FootprintItem:
    stack: str
    address: str
    kind: str
    detail: str
    embedded_kg: float | None
    use_kg: float | None
    problem: str | None = None

    @property
    def total_kg(self) -> float | None:
        return None if self.embedded_kg is None or self.use_kg is None else round(self.embedded_kg + self.use_kg, 3)


@dataclass
class StackFootprint:
    name: str
    region: str
    location: str | None = None
    items: list[FootprintItem] = field(default_factory=list)
    not_estimated: list[str] = field(default_factory=list)

    @property
    def total_kg(self) -> float:
        return round(sum(item.total_kg or 0.0 for item in self.items), 2)

    @property
    def unknown(self) -> list[FootprintItem]:
        return [item for item in self.items if item.problem]


@dataclass
class FootprintReport:
    stacks: list[StackFootprint]
    load_percent: float
    boaviztapi: str

    @property
    def total_kg(self) -> float:
        return round(sum(stack.total_kg for stack in self.stacks), 2)

    def as_dict(self) -> dict[str, Any]:
        return {
            "unit": "kgCO2e per month",
            "method": "Boavizta (boaviztapi " + self.boaviztapi + "): manufacture share + use, AWS archetypes, region grid intensity",
            "load_percent": self.load_percent,
            "total_kg": self.total_kg,
            "stacks": [
                {
                    "name": stack.name,
                    "region": stack.region,
                    "usage_location": stack.location,
                    "total_kg": stack.total_kg,
                    "items": [{**asdict(item), "total_kg": item.total_kg} for item in stack.items],
                    "not_estimated": stack.not_estimated,
                }
                for stack in self.stacks
            ],
        }


class FootprintReader(StackReader):
    """What one stack keeps running, as machines Boavizta knows."""

    def machines_ecs_service(self, key: str, body: Mapping[str, Any]) -> Machines:
        _, task = self._resolve(body["task_definition"])
        vcpu, tasks = int(task["cpu"]) / 1024, body.get("desired_count", 1)
        host, host_vcpu = FARGATE_HOST
        return Machines(host, tasks * vcpu / host_vcpu, f"{tasks} x Fargate task {vcpu:g} vCPU, as {vcpu / host_vcpu:g} of an {host}")

    def demands(self) -> tuple[list[tuple[str, str, Machines]], list[str]]:
        """(address, kind, machines) of every compute resource, and the managed ones not estimated."""
        found, managed = [], []
        for kind, instances in sorted(self.resources.items()):
            for key, body in sorted(instances.items()):
                address = _construct_path(body) or f"{kind}.{key}"
                if kind in COMPUTE:
                    found.append((address, kind, getattr(self, COMPUTE[kind])(key, body)))
                elif kind in MANAGED:
                    managed.append(f"{address} ({MANAGED[kind]})")
        return found, managed


def boavizta_python(environ: Mapping[str, str] | None = None) -> Path:
    """The Python of the virtualenv holding boaviztapi: ``SPAWNIT_BOAVIZTA_PYTHON``, else ``.venv-boavizta``
    beside SpawnIt's sources or in the current folder."""
    environ = os.environ if environ is None else environ
    if environ.get("SPAWNIT_BOAVIZTA_PYTHON"):
        return Path(environ["SPAWNIT_BOAVIZTA_PYTHON"])
    for root in (Path(__file__).resolve().parents[1], Path.cwd()):
        candidate = root / ".venv-boavizta" / "bin" / "python"
        if candidate.exists():
            return candidate
    raise FootprintError(
        "boaviztapi is not installed: run ./scripts/test (it installs .venv-boavizta from requirements-boavizta.txt), "
        "or set SPAWNIT_BOAVIZTA_PYTHON to a Python that has boaviztapi"
    )


def _impacts(machines: list[dict[str, str]], load_percent: float, python: Path) -> tuple[str, list[dict[str, Any]]]:
    """boaviztapi's version and one result per machine. Boavizta's figures depend on nothing but the request
    and its installed data, so a process asks once per request and Python (a worker applying the same
    instance types again and again starts no helper, ~1 CPU-s each); a new boaviztapi means a new process."""
    request = json.dumps({"load_percent": load_percent, "hours": HOURS, "machines": machines}, sort_keys=True)
    answer = json.loads(_asked(str(python), request))  # a fresh copy for each caller
    return answer["boaviztapi"], answer["results"]


@functools.lru_cache(maxsize=256)
def _asked(python: str, request: str) -> str:
    helper = resources.files("spawnit").joinpath("assets", "footprint", "boavizta_impacts.py")
    try:
        result = subprocess.run([python, str(helper)], input=request, capture_output=True, text=True, timeout=600)
    except OSError as error:
        raise FootprintError(f"boaviztapi's Python {python} cannot run: {error}") from None
    if result.returncode != 0:  # an error is not kept: the next call asks again
        raise FootprintError(f"boaviztapi failed: {result.stderr.strip().splitlines()[-1] if result.stderr.strip() else 'no message'}")
    json.loads(result.stdout)  # whole JSON, or the error below rather than a cached fragment
    return result.stdout


def estimate_footprint(stacks: Mapping[str, Mapping[str, Any]], *, load_percent: float = 50.0, environ: Mapping[str, str] | None = None) -> FootprintReport:
    """The monthly footprint of every stack (documents by name)."""
    if not 0 < load_percent <= 100:
        raise FootprintError(f"load_percent: {load_percent} is not allowed; allowed: more than 0, at most 100")
    readers = {name: FootprintReader(name, document) for name, document in stacks.items()}
    demands = {name: reader.demands() for name, reader in readers.items()}
    regions = {name: stack_region(document) or "eu-west-3" for name, document in stacks.items()}
    requests = [
        {"instance_type": machines.instance_type, "region": regions[name]} for name, (found, _) in demands.items() for _, _, machines in found
    ]
    version, results = _impacts(requests, load_percent, boavizta_python(environ)) if requests else ("-", [])
    answers = iter(results)
    report = FootprintReport([], load_percent, version)
    for name, (found, managed) in demands.items():
        stack = StackFootprint(name, regions[name], not_estimated=managed)
        for address, kind, machines in found:
            answer = next(answers)
            if "error" in answer:
                stack.items.append(FootprintItem(name, address, kind, machines.detail, None, None, answer["error"]))
                continue
            stack.location = answer["location"]
            stack.items.append(
                FootprintItem(name, address, kind, machines.detail, round(machines.count * answer["embedded_kg"], 3), round(machines.count * answer["use_kg"], 3))
            )
        report.stacks.append(stack)
    return report


def stack_footprint(document: Mapping[str, Any], name: str, *, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One stack's monthly footprint as an instance page shows it: the total and what it leaves out, or a
    note saying why there is none (no cloud machine in the stack, boaviztapi unavailable). Never raises."""
    found, managed = FootprintReader(name, document).demands()
    if not found:
        return {"total_kg": None, "note": "not estimated: no cloud machine in this stack (Boavizta's archetypes describe AWS instances)", "not_estimated": managed}
    try:
        stack = estimate_footprint({name: document}, environ=environ)
    except FootprintError as error:
        return {"total_kg": None, "note": f"not estimated: {error}", "not_estimated": managed}
    report = stack.as_dict()
    (only,) = report["stacks"]
    problems = [f"{item['address']}: {item['problem']}" for item in only["items"] if item["problem"]]
    return {"total_kg": only["total_kg"], "unit": report["unit"], "method": report["method"], "not_estimated": managed, "problems": problems}


def render_footprint(report: FootprintReport, console: Any) -> None:
    """Readable tables (rich) for people."""
    from rich.table import Table

    for stack in report.stacks:
        table = Table(title=f"{stack.name} ({stack.region}, grid {stack.location or '-'}): {stack.total_kg:,.2f} kgCO2e / month", title_justify="left")
        for column in ("resource", "what", "manufacture", "use", "kgCO2e / month"):
            table.add_column(column, justify="left" if column in ("resource", "what") else "right")
        for item in sorted(stack.items, key=lambda item: -(item.total_kg or 0)):
            if item.problem:
                table.add_row(item.address, item.problem, "-", "-", "unknown")
            else:
                table.add_row(item.address, item.detail, f"{item.embedded_kg:,.2f}", f"{item.use_kg:,.2f}", f"{item.total_kg:,.2f}")
        console.print(table)
        if stack.not_estimated:
            console.print(f"not estimated (hardware not described by AWS): {', '.join(stack.not_estimated)}")
    console.print(f"total: {report.total_kg:,.2f} kgCO2e / month; Boavizta (boaviztapi {report.boaviztapi}), workload {report.load_percent:g} %")
    for stack in report.stacks:
        for item in stack.unknown:
            print(f"unknown {item.stack} {item.address}: {item.problem}", file=sys.stderr)
