#!/usr/bin/env python3
"""Wall time, CPU time and peak memory of synthesizing every default stack, the provider bindings loaded
eagerly (the packages' own import, SPAWNIT_EAGER_BINDINGS=1) and lazily (spawnit/bindings.py), paired in
one run, against the bare import of the AWS binding each way.

Targets: the lazy full synthesis at most 0.5x the eager one's CPU; a cold `spawnit plan prod` (prod
synthesized alone) at most 0.3x; a peak under 1 GB for the largest single process, 1.5 GB for the tree. Memory is sampled every 20 ms: the Python process, its node runtime (the jsii kernel),
and the two together; CPU is the process tree's user + system time (the finished children's rusage).

With ``--cdk-terrain``, the same small stack (a provider, a VPC, an instance) is also synthesized with
CDK Terrain's AWS binding, ``cdktn-aws``, a split package whose submodules load on first use (its own
virtualenv in ~/.cache/spawnit/benchmark-cdk-terrain, from benchmarks/requirements-cdk-terrain.txt;
nothing of it is imported by SpawnIt), against SpawnIt's lazy bindings and the packages' eager import.

    python benchmarks/synth.py [--repeat N] [--cdk-terrain]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BARE_IMPORT = "import spawnit, cdktf_cdktf_provider_aws"
FULL_SYNTH = "import sys; from spawnit.stacks.synthesis import synthesize; synthesize(sys.argv[1])"
CATALOG_SYNTH = (
    "import sys; from cdktf import App; from spawnit.stacks import add_catalog_examples; "
    "app = App(outdir=sys.argv[1]); add_catalog_examples(app); app.synth()"
)
PLAN_PROD = "import sys; from spawnit.cli import main; sys.exit(main(['plan', 'prod', '--outdir', sys.argv[1]]))"
CPU_RATIO_TARGET = 0.5
PLAN_RATIO_TARGET = 0.3
PEAK_TARGET_MB = 1024
TREE_TARGET_MB = 1536
SMALL_STACK = """
import sys
{imports}
app = App(outdir=sys.argv[1])
stack = TerraformStack(app, "small")
AwsProvider(stack, "aws", region="eu-west-3")
vpc = {vpc}(stack, "vpc", cidr_block="10.0.0.0/16")
{instance}(stack, "instance", ami="ami-12345678", instance_type="t3.micro", tags={{"vpc": vpc.id}})
app.synth()
"""
SMALL_CDKTF = SMALL_STACK.format(
    imports="import spawnit\nfrom cdktf import App, TerraformStack\nfrom cdktf_cdktf_provider_aws.provider import AwsProvider\n"
    "from cdktf_cdktf_provider_aws.vpc import Vpc\nfrom cdktf_cdktf_provider_aws.instance import Instance",
    vpc="Vpc", instance="Instance",
)
SMALL_CDKTN = SMALL_STACK.format(
    imports="from cdktn import App, TerraformStack\nfrom cdktn_aws.provider import AwsProvider\nfrom cdktn_aws.vpc import AwsVpc\n"
    "from cdktn_aws.ec2 import AwsInstance",
    vpc="AwsVpc", instance="AwsInstance",
)
CDK_TERRAIN_VENV = Path.home() / ".cache" / "spawnit" / "benchmark-cdk-terrain"
CDK_TERRAIN_REQUIREMENTS = ROOT / "benchmarks" / "requirements-cdk-terrain.txt"
# A stand-in engine: `spawnit plan` measured up to the engine, whose own work is not SpawnIt's.
ENGINE = "#!/bin/sh\n[ \"$1\" = version ] && echo 'OpenTofu v1.12.8 (stand-in)'\nexit 0\n"


@dataclass
class Measure:
    seconds: float
    python_mb: float
    node_mb: float
    tree_mb: float
    cpu_seconds: float = 0.0

    @property
    def process_peak_mb(self) -> float:
        return max(self.python_mb, self.node_mb)


def measure(code: str, *arguments: str, eager: bool = False, extra: dict[str, str] | None = None, python: str = sys.executable) -> Measure:
    """Run ``python -c code`` and sample the RSS of its whole process tree every 20 ms."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SPAWNIT_")} | (extra or {})
    environ["JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"] = "20"
    if eager:
        environ["SPAWNIT_EAGER_BINDINGS"] = "1"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    process = subprocess.Popen([python, "-c", code, *arguments], cwd=ROOT, env=environ, stdout=subprocess.DEVNULL)
    root = psutil.Process(process.pid)
    python_peak = node_peak = tree_peak = 0
    while process.poll() is None:
        try:
            python_rss = root.memory_info().rss
            node_rss = [child.memory_info().rss for child in root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        python_peak = max(python_peak, python_rss)
        node_peak = max([node_peak, *node_rss])
        tree_peak = max(tree_peak, python_rss + sum(node_rss))
        time.sleep(0.02)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise SystemExit(f"benchmark: {code!r} exited with {process.returncode}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Measure(seconds, python_peak / 2**20, node_peak / 2**20, tree_peak / 2**20, cpu)


def median(measures: list[Measure]) -> Measure:
    return Measure(*(statistics.median(getattr(m, field) for m in measures) for field in ("seconds", "python_mb", "node_mb", "tree_mb", "cpu_seconds")))


def cdk_terrain_python() -> str:
    """CDK Terrain's AWS binding in a virtualenv of its own (made once, again when the pins change)."""
    python = CDK_TERRAIN_VENV / "bin" / "python"
    stamp = CDK_TERRAIN_VENV / ".installed"
    pins = CDK_TERRAIN_REQUIREMENTS.read_text()
    if not (python.exists() and stamp.exists() and stamp.read_text() == pins):
        subprocess.run([sys.executable, "-m", "venv", str(CDK_TERRAIN_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(CDK_TERRAIN_REQUIREMENTS)], check=True)
        stamp.write_text(pins)
    return str(python)


def compare_small_stack(repeat: int) -> None:
    """One small stack with CDK Terrain's split AWS binding, SpawnIt's lazy bindings and the eager import."""
    python = cdk_terrain_python()
    with tempfile.TemporaryDirectory() as out:
        runs = (
            ("cdktf-cdktf-provider-aws, eager import", median([measure(SMALL_CDKTF, out, eager=True) for _ in range(repeat)])),
            ("cdktf-cdktf-provider-aws, SpawnIt's lazy", median([measure(SMALL_CDKTF, out) for _ in range(repeat)])),
            ("cdktn-aws (CDK Terrain, split package)", median([measure(SMALL_CDKTN, out, python=python) for _ in range(repeat)])),
        )
    print(f"\nsmall stack (provider, VPC, instance)       {'wall s':>7} {'CPU s':>7} {'python MB':>10} {'node MB':>8} {'both MB':>8}")
    for label, run in runs:
        print(f"{label:<44} {run.seconds:>7.2f} {run.cpu_seconds:>7.2f} {run.python_mb:>10.0f} {run.node_mb:>8.0f} {run.tree_mb:>8.0f}")
    eager, lazy, terrain = (run for _, run in runs)
    print(f"wall / eager: SpawnIt's lazy {lazy.seconds / eager.seconds:.2f}x, CDK Terrain {terrain.seconds / eager.seconds:.2f}x; "
          f"node process: CDK Terrain's {terrain.node_mb / lazy.node_mb:.1f}x SpawnIt's")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each, the median is printed (default 1)")
    parser.add_argument("--cdk-terrain", action="store_true", help="also one small stack with CDK Terrain's cdktn-aws (installs it in its own virtualenv)")
    arguments = parser.parse_args()
    repeat = arguments.repeat
    with tempfile.TemporaryDirectory() as eager_out, tempfile.TemporaryDirectory() as lazy_out, tempfile.TemporaryDirectory() as catalog_out:
        bare_eager = median([measure(BARE_IMPORT, eager=True) for _ in range(repeat)])
        bare_lazy = median([measure(BARE_IMPORT) for _ in range(repeat)])
        synth_eager = median([measure(FULL_SYNTH, eager_out, eager=True) for _ in range(repeat)])
        synth_lazy = median([measure(FULL_SYNTH, lazy_out) for _ in range(repeat)])
        catalog = median([measure(CATALOG_SYNTH, catalog_out) for _ in range(repeat)])
        engine = Path(catalog_out) / "tofu"
        engine.write_text(ENGINE)
        engine.chmod(0o755)
        plans_cold, plans_cached = [], []
        for index in range(repeat):
            folder = str(Path(catalog_out) / f"plan-{index}")
            plans_cold.append(measure(PLAN_PROD, folder, extra={"SPAWNIT_TOFU": str(engine)}))  # an empty folder: prod alone is synthesized
            plans_cached.append(measure(PLAN_PROD, folder, extra={"SPAWNIT_TOFU": str(engine)}))  # the same inputs: nothing is
        plan_cold, plan_cached = median(plans_cold), median(plans_cached)
        stacks = len(list(Path(lazy_out).glob("stacks/*/cdk.tf.json")))
        catalog_stacks = len(list(Path(catalog_out).glob("stacks/*/cdk.tf.json")))
    print(f"{'run':<44} {'wall s':>7} {'CPU s':>7} {'python MB':>10} {'node MB':>8} {'both MB':>8}")
    runs = (
        ("bare import of the AWS binding, eager", bare_eager),
        ("bare import of the AWS binding, lazy", bare_lazy),
        (f"full synth ({stacks} stacks), eager bindings", synth_eager),
        (f"full synth ({stacks} stacks), lazy bindings", synth_lazy),
        (f"catalog, every service x target ({catalog_stacks}), lazy", catalog),
        ("spawnit plan prod, cold (prod alone)", plan_cold),
        ("spawnit plan prod, cached", plan_cached),
    )
    for label, run in runs:
        print(f"{label:<44} {run.seconds:>7.2f} {run.cpu_seconds:>7.2f} {run.python_mb:>10.0f} {run.node_mb:>8.0f} {run.tree_mb:>8.0f}")
    cpu_ratio = synth_lazy.cpu_seconds / synth_eager.cpu_seconds
    print(f"lazy / eager bare import: {bare_lazy.cpu_seconds / bare_eager.cpu_seconds:.2f}x CPU, {bare_lazy.seconds / bare_eager.seconds:.2f}x wall")
    print(f"lazy / eager full synth: {cpu_ratio:.2f}x CPU (target <= {CPU_RATIO_TARGET}): {'met' if cpu_ratio <= CPU_RATIO_TARGET else 'MISSED'}, "
          f"{synth_lazy.seconds / synth_eager.seconds:.2f}x wall")
    plan_ratio = plan_cold.cpu_seconds / synth_eager.cpu_seconds
    print(f"plan prod cold / eager full synth: {plan_ratio:.2f}x CPU (target <= {PLAN_RATIO_TARGET}): {'met' if plan_ratio <= PLAN_RATIO_TARGET else 'MISSED'}; "
          f"cached: {plan_cached.seconds:.2f} s wall")
    peak = synth_lazy.process_peak_mb
    print(f"peak of one synth process: {peak:.0f} MB (target < {PEAK_TARGET_MB}): {'met' if peak < PEAK_TARGET_MB else 'MISSED'}; "
          f"the tree: {synth_lazy.tree_mb:.0f} MB (target < {TREE_TARGET_MB}): {'met' if synth_lazy.tree_mb < TREE_TARGET_MB else 'MISSED'}")
    if arguments.cdk_terrain:
        compare_small_stack(repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
