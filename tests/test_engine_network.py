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


def _public_network(spotilike, real_engine: dict) -> dict:
    """Spotilike's VPC and public subnets exactly as synthesized, with a provider for the emulator (its endpoint: :func:`_engine`)."""
    document = spotilike.document
    subnets = {key: body for key, body in document["resource"]["aws_subnet"].items() if body["tags"]["Tier"] == "public"}
    return {
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": real_engine["aws_version"]}}},
        "provider": {"aws": [{
            "region": REGION, "access_key": "testing", "secret_key": "testing", "skip_credentials_validation": True,
            "skip_requesting_account_id": True, "skip_metadata_api_check": "true",
        }]},
        "resource": {"aws_vpc": copy.deepcopy(document["resource"]["aws_vpc"]), "aws_subnet": copy.deepcopy(subnets)},
    }


def _engine(real_engine: dict, emulator: Emulator, folder: Path, *arguments: str) -> subprocess.CompletedProcess:
    """The engine in ``folder``, its AWS provider sent to the emulator by the endpoint variables (the
    provider's "Custom Service Endpoints" guide: AWS_ENDPOINT_URL_<SERVICE>), as SpawnIt's jobs do."""
    config = folder / "cli.tfrc"
    config.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = {json.dumps(real_engine["mirror"])}\n  }}\n}}\n')
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "TF_CLI_CONFIG_FILE": str(config), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    environ |= {"AWS_ENDPOINT_URL_EC2": emulator.endpoint, "AWS_ENDPOINT_URL_STS": emulator.endpoint}
    return subprocess.run([real_engine["path"], *arguments, "-no-color"], cwd=folder, env=environ, capture_output=True, text=True, timeout=600)


def _second_plan(real_engine: dict, emulator: Emulator, folder: Path, config: dict) -> subprocess.CompletedProcess:
    folder.mkdir()
    (folder / "main.tf.json").write_text(json.dumps(config))
    for step in (("init", "-input=false"), ("apply", "-input=false", "-auto-approve")):
        result = _engine(real_engine, emulator, folder, *step)
        assert result.returncode == 0, result.stdout + result.stderr
    return _engine(real_engine, emulator, folder, "plan", "-input=false", "-detailed-exitcode")


def test_the_subnet_tags_eks_needs_stay_put_on_the_next_plan(spotilike, emulator, real_engine, tmp_path):
    emulator.reset()
    config = _public_network(spotilike, real_engine)
    assert all(body["tags"][ELB_TAG] == "1" for body in config["resource"]["aws_subnet"].values())
    result = _second_plan(real_engine, emulator, tmp_path / "owned", config)
    assert result.returncode == 0, result.stdout  # no change: the tag is the subnet's own
    tagged = emulator.client("ec2").describe_subnets(Filters=[{"Name": f"tag:{ELB_TAG}", "Values": ["1"]}])["Subnets"]
    assert len(tagged) == 2


def test_a_tag_written_beside_the_subnets_own_tags_flips_on_every_plan(spotilike, emulator, real_engine, tmp_path):
    """Today's pattern before the fix, planted: an aws_ec2_tag on subnets whose tags the network manages."""
    emulator.reset()
    config = _public_network(spotilike, real_engine)
    config["resource"]["aws_ec2_tag"] = {}
    for key, body in config["resource"]["aws_subnet"].items():
        del body["tags"][ELB_TAG]
        config["resource"]["aws_ec2_tag"][f"elb-{key}"] = {"resource_id": f"${{aws_subnet.{key}.id}}", "key": ELB_TAG, "value": "1"}
    result = _second_plan(real_engine, emulator, tmp_path / "beside", config)
    assert result.returncode == 2, result.stdout
    assert f'- "{ELB_TAG}" = "1"' in result.stdout.replace("  ", " ") or ELB_TAG in result.stdout


def _adopting(real_engine: dict) -> dict:
    """The pattern the edge uses to adopt a zone's WAF entry point (an import block whose for_each is a
    lookup filtered to at most one match, into one resource), on a resource the emulator has: a VPC."""
    return {
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws", "version": real_engine["aws_version"]}}},
        "provider": {"aws": [{
            "region": REGION, "access_key": "testing", "secret_key": "testing", "skip_credentials_validation": True,
            "skip_requesting_account_id": True, "skip_metadata_api_check": "true",
        }]},
        "data": {"aws_vpcs": {"existing": {"tags": {"Name": "entry-point"}}}},
        "import": [{"for_each": '${{ for id in data.aws_vpcs.existing.ids : id => id if length(id) > 0 }}', "to": "aws_vpc.entry", "id": "${each.key}"}],
        "resource": {"aws_vpc": {"entry": {"cidr_block": "10.9.0.0/16", "tags": {"Name": "entry-point"}}}},
    }


def test_an_import_over_a_lookup_adopts_what_exists_and_creates_what_does_not(emulator, real_engine, tmp_path, prod):
    """The edge's WAF ruleset would fail to create on a zone that already has the phase's entry point
    (cloudflare/terraform-provider-cloudflare#1394): prod adopts it with this pattern, proven here with the
    real engine on a resource moto has (no Cloudflare provider or API can be had here)."""
    emulator.reset()
    config = _adopting(real_engine)
    folder = tmp_path / "fresh"
    folder.mkdir()
    (folder / "main.tf.json").write_text(json.dumps(config))
    assert _engine(real_engine, emulator, folder, "init", "-input=false").returncode == 0
    fresh = _engine(real_engine, emulator, folder, "plan", "-input=false")
    assert "Plan: 1 to add, 0 to change, 0 to destroy." in fresh.stdout, fresh.stdout + fresh.stderr
    existing = emulator.client("ec2").create_vpc(CidrBlock="10.9.0.0/16", TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "entry-point"}]}])
    adopted = _engine(real_engine, emulator, folder, "apply", "-input=false", "-auto-approve")
    assert "Apply complete! Resources: 1 imported, 0 added" in adopted.stdout, adopted.stdout + adopted.stderr
    assert f"aws_vpc.entry: Import complete [id={existing['Vpc']['VpcId']}]" in adopted.stdout
    again = _engine(real_engine, emulator, folder, "plan", "-input=false", "-detailed-exitcode")
    assert again.returncode == 0, again.stdout  # adopted once, then simply managed
    # prod's own import block has the same shape: the zone's rulesets of the WAF's kind and phase, into the WAF
    (block,) = prod.document["import"]
    (waf_key,) = prod.resources("cloudflare_ruleset")
    (lookup_key,) = prod.data("cloudflare_rulesets")
    assert block["to"] == f"cloudflare_ruleset.{waf_key}"
    assert block["for_each"] == (
        f'${{{{ for r in data.cloudflare_rulesets.{lookup_key}.result : r.id => r if r.kind == "zone" && r.phase == "http_request_firewall_managed" }}}}'
    )
    assert block["id"] == "zones/${data.cloudflare_zone.edge_zone_0AE99B69.id}/${each.key}"
