"""The network's own resources with the real engine and AWS provider, against moto: what a construct
writes on another's resources shows up on the next plan (the class of bug "a construct editing another's
resources"). The emulator's departures from AWS are listed in tests/emulator.py."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest

from conftest import free_port
from emulator import Emulator

pytestmark = pytest.mark.engine

REGION = "eu-west-3"
ELB_TAG = "kubernetes.io/role/elb"


@pytest.fixture(scope="module")
def spotilike(all_stacks):
    return all_stacks["spotilike"]


@pytest.fixture(scope="module")
def emulator():
    emulator = Emulator(free_port(), region=REGION)
    yield emulator
    emulator.stop()


def _public_network(spotilike, emulator: Emulator, real_engine: dict) -> dict:
    """Spotilike's VPC and public subnets exactly as synthesized, with a provider pointed at the emulator."""
    document = spotilike.document
    subnets = {key: body for key, body in document["resource"]["aws_subnet"].items() if body["tags"]["Tier"] == "public"}
    return {
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": real_engine["aws_version"]}}},
        "provider": {"aws": [{
            "region": REGION, "access_key": "testing", "secret_key": "testing", "skip_credentials_validation": True,
            "skip_requesting_account_id": True, "skip_metadata_api_check": "true", "endpoints": [{"ec2": emulator.endpoint, "sts": emulator.endpoint}],
        }]},
        "resource": {"aws_vpc": copy.deepcopy(document["resource"]["aws_vpc"]), "aws_subnet": copy.deepcopy(subnets)},
    }


def _engine(real_engine: dict, folder: Path, *arguments: str) -> subprocess.CompletedProcess:
    config = folder / "cli.tfrc"
    config.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = {json.dumps(real_engine["mirror"])}\n  }}\n}}\n')
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "TF_CLI_CONFIG_FILE": str(config), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    return subprocess.run([real_engine["path"], *arguments, "-no-color"], cwd=folder, env=environ, capture_output=True, text=True, timeout=600)


def _second_plan(real_engine: dict, folder: Path, config: dict) -> subprocess.CompletedProcess:
    folder.mkdir()
    (folder / "main.tf.json").write_text(json.dumps(config))
    for step in (("init", "-input=false"), ("apply", "-input=false", "-auto-approve")):
        result = _engine(real_engine, folder, *step)
        assert result.returncode == 0, result.stdout + result.stderr
    return _engine(real_engine, folder, "plan", "-input=false", "-detailed-exitcode")


def test_the_subnet_tags_eks_needs_stay_put_on_the_next_plan(spotilike, emulator, real_engine, tmp_path):
    emulator.reset()
    config = _public_network(spotilike, emulator, real_engine)
    assert all(body["tags"][ELB_TAG] == "1" for body in config["resource"]["aws_subnet"].values())
    result = _second_plan(real_engine, tmp_path / "owned", config)
    assert result.returncode == 0, result.stdout  # no change: the tag is the subnet's own
    tagged = emulator.client("ec2").describe_subnets(Filters=[{"Name": f"tag:{ELB_TAG}", "Values": ["1"]}])["Subnets"]
    assert len(tagged) == 2


def test_a_tag_written_beside_the_subnets_own_tags_flips_on_every_plan(spotilike, emulator, real_engine, tmp_path):
    """Today's pattern before the fix, planted: an aws_ec2_tag on subnets whose tags the network manages."""
    emulator.reset()
    config = _public_network(spotilike, emulator, real_engine)
    config["resource"]["aws_ec2_tag"] = {}
    for key, body in config["resource"]["aws_subnet"].items():
        del body["tags"][ELB_TAG]
        config["resource"]["aws_ec2_tag"][f"elb-{key}"] = {"resource_id": f"${{aws_subnet.{key}.id}}", "key": ELB_TAG, "value": "1"}
    result = _second_plan(real_engine, tmp_path / "beside", config)
    assert result.returncode == 2, result.stdout
    assert f'- "{ELB_TAG}" = "1"' in result.stdout.replace("  ", " ") or ELB_TAG in result.stdout
