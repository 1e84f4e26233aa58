"""The package as others use it: `pip install .` then import the constructs; `cdktf synth` like `python main.py`.

Each test here starts one process of its own with the jsii runtime: that is what it checks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT

OUTSIDE_PROJECT = textwrap.dedent(
    """
    import sys

    import spawnit  # first, as the README says: the bindings then load lazily

    from cdktf import App, TerraformStack
    from cdktf_cdktf_provider_aws.provider import AwsProvider
    from spawnit.constructs import AppFleet, Cache, Database, LoadBalancer, Network


    class ShopStack(TerraformStack):
        def __init__(self, scope, id):
            super().__init__(scope, id)
            AwsProvider(self, "aws", region="eu-west-1")
            net = Network(self, "net", name="shop", region="eu-west-1", availability_zones=["eu-west-1a", "eu-west-1b"])
            alb = LoadBalancer(self, "alb", name="shop", network=net)
            db = Database(self, "db", name="shop", network=net)
            cache = Cache(self, "cache", name="shop", network=net)
            AppFleet(self, "app", name="shop", network=net, load_balancer=alb, database=db, cache=cache, min_size=1, desired_capacity=1)


    app = App(outdir=sys.argv[1])
    ShopStack(app, "shop")
    app.synth()
    print(spawnit.__file__)
    """
)


def clean_environment(tmp_path: Path) -> dict[str, str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("SPAWNIT_")}
    empty_config = tmp_path / "empty.toml"
    empty_config.write_text("")
    environ.update(SPAWNIT_CONFIG=str(empty_config), JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20", CHECKPOINT_DISABLE="1")
    return environ


def test_installed_package_builds_a_stack_from_its_constructs(tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target", str(site), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (metadata,) = site.glob("spawnit-*.dist-info/METADATA")
    assert "License-Expression: Apache-2.0" in metadata.read_text()
    assert {path.name for path in metadata.parent.glob("licenses/*")} == {"LICENSE", "NOTICE"}
    project = tmp_path / "other-team"
    project.mkdir()
    (project / "app.py").write_text(OUTSIDE_PROJECT)
    environ = clean_environment(tmp_path) | {"PYTHONPATH": str(site)}
    result = subprocess.run([sys.executable, "app.py", "out"], cwd=project, env=environ, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert Path(result.stdout.strip().splitlines()[-1]).is_relative_to(site), "spawnit was not imported from the installed copy"
    stack = json.loads((project / "out" / "stacks" / "shop" / "cdk.tf.json").read_text())
    resources = stack["resource"]
    assert next(iter(resources["aws_vpc"].values()))["tags"] == {"Name": "shop"}
    assert len(resources["aws_network_interface"]) == 2  # NAT instances by default
    assert len(resources["aws_db_instance"]) == 1 and len(resources["aws_lb"]) == 1
    assert len(resources["aws_autoscaling_group"]) == 3  # the fleet and one NAT per zone


def test_npx_cdktf_synth_produces_the_same_stacks_as_the_python_app_with_no_error_coloured_noise(outdir, tmp_path):
    cdktf = ROOT / "node_modules" / ".bin" / "cdktf"
    assert cdktf.exists(), "cdktf-cli is not installed: run the tests through ./scripts/test, which installs it"
    target = tmp_path / "cdktf.out"
    environ = clean_environment(tmp_path)
    for quieted in ("CHECKPOINT_DISABLE", "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"):  # the project's own files quiet these
        environ.pop(quieted, None)
    environ["TF_CLI_CONFIG_FILE"] = str(tmp_path / "absent.tfrc")  # a machine whose setting names no file
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ['PATH']}"  # python3 of this virtualenv
    environ["HOME"] = str(tmp_path)  # cdktf-cli writes its settings there
    # An instance stack made by `spawnit synth --service` before: cdktf-cli empties the folder, SpawnIt puts it back.
    from spawnit import synthcache

    (target / "stacks" / "acme-kept").mkdir(parents=True)
    shutil.copy(outdir / "stacks" / "catalog-redis-docker" / "cdk.tf.json", target / "stacks" / "acme-kept" / "cdk.tf.json")
    entry = {"name": "acme-kept", "constructPath": "acme-kept", "dependencies": [], "annotations": [],
             "synthesizedStackPath": "stacks/acme-kept/cdk.tf.json", "workingDirectory": "stacks/acme-kept", "stackMetadataPath": "stacks/acme-kept/metadata.json"}
    synthcache.keep_instance(target, "acme-kept", entry)
    result = subprocess.run(["npx", "--no-install", "cdktf", "synth", "--output", str(target)], cwd=ROOT, env=environ, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # No telemetry call failing without a network, no Node end-of-life banner, no Terraform CLI config warning:
    # only SpawnIt's own warnings, as warnings (cdktf-cli colours what an app writes on stderr as an error).
    noise = [line for line in (result.stdout + result.stderr).splitlines() if "[ERROR]" in line or "[WARN]" in line or "CLI configuration" in line]
    assert noise == [], "\n".join(noise[:10])
    assert "WARN [prod/alerts]: prod: alerts go to SNS topic greenleaf-prod-alerts, which nobody receives" in result.stdout
    from conftest import CATALOG_VARIANTS, PLATFORM_VARIANTS, TEST_STACKS, VARIANTS

    assert json.loads((target / "manifest.json").read_text())["stacks"]["acme-kept"] == entry  # kept, whoever rewrote the folder
    shutil.rmtree(target / "stacks" / "acme-kept")
    names = sorted(path.name for path in (target / "stacks").iterdir())
    assert names == sorted(path.name for path in (outdir / "stacks").iterdir() if path.name not in {**VARIANTS, **CATALOG_VARIANTS, **PLATFORM_VARIANTS, **dict.fromkeys(TEST_STACKS)})
    assert {"dev", "preprod", "prod", "catalog-postgresql-docker", "catalog-postgresql-aws"} <= set(names)
    for name in names:
        assert json.loads((target / "stacks" / name / "cdk.tf.json").read_text()) == json.loads((outdir / "stacks" / name / "cdk.tf.json").read_text()), name
    shutil.rmtree(target)


def test_the_suite_controller_starts_no_jsii_runtime():
    """With the suite on several workers, the controller only schedules: the tests' shared modules (what it
    imports) must not load cdktf, whose import starts the jsii runtime, a Node process of ~600 MB."""
    shared = ("conftest", "stackjson", "standin", "plansamples", "emulator", "hosts", "processes")
    code = f"import sys\nsys.path.insert(0, 'tests')\nimport {', '.join(shared)}\nprint(sorted(m for m in sys.modules if m.startswith(('cdktf', 'jsii', 'constructs'))))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout.strip()
    assert loaded == "[]"
