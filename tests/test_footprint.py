"""The footprint of the stacks, computed by boaviztapi (its own virtualenv, installed by scripts/test):
figures that move the right way, unknown machines reported, managed services named."""

from __future__ import annotations

import copy
import json

import pytest

from spawnit.cli import main
from spawnit.cost import load_stacks
from spawnit.footprint import FootprintError, estimate_footprint, stack_footprint


@pytest.fixture(scope="module")
def documents(outdir) -> dict:
    return load_stacks(outdir, ["dev", "preprod", "prod", "spotilike", "spotilike-web"])


@pytest.fixture(scope="module")
def report(documents):
    return estimate_footprint(documents)


def items(report, stack: str) -> dict:
    (found,) = [candidate for candidate in report.stacks if candidate.name == stack]
    return {item.address: item for item in found.items}


def with_fleet_type(document: dict, instance_type: str) -> dict:
    changed = copy.deepcopy(document)
    for template in changed["resource"]["aws_launch_template"].values():
        if template.get("instance_type") == "t3.small":
            template["instance_type"] = instance_type
    return changed


def with_region(document: dict, region: str) -> dict:
    changed = copy.deepcopy(document)
    changed["provider"]["aws"][0]["region"] = region
    return changed


def test_every_compute_resource_has_a_manufacture_share_and_a_use(report):
    for stack in report.stacks:
        for item in stack.items:
            assert item.problem is None and item.embedded_kg > 0 and item.use_kg > 0, (stack.name, item.address)
    assert {stack.name: stack.location for stack in report.stacks if stack.items} == {
        "dev": "FRA", "preprod": "FRA", "prod": "FRA", "spotilike": "FRA"
    }


def test_a_fleet_asleep_at_night_weighs_less_than_the_same_fleet_always_on(report):
    asleep, always_on = items(report, "preprod")["fleet/group"], items(report, "prod")["fleet/group"]
    assert "awake 50 h/week" in asleep.detail and asleep.detail.startswith("2 x t3.small")
    assert always_on.detail == "2 x t3.small"
    assert asleep.total_kg == pytest.approx(always_on.total_kg * 50 / 168, rel=0.05)


def test_a_multi_az_standby_counts_as_a_second_machine(report):
    prod_db, spotilike_db = items(report, "prod")["database/postgres"], items(report, "spotilike")["database/postgres"]
    assert prod_db.detail == "db.t3.medium Multi-AZ" and spotilike_db.detail == "db.t3.micro Single-AZ"
    assert prod_db.total_kg > 2 * spotilike_db.total_kg


def test_a_bigger_instance_weighs_more(documents):
    small = estimate_footprint({"prod": documents["prod"]})
    medium = estimate_footprint({"prod": with_fleet_type(documents["prod"], "t3.medium")})
    assert items(small, "prod")["fleet/group"].total_kg < items(medium, "prod")["fleet/group"].total_kg


def test_a_cleaner_grid_weighs_less_for_the_same_machines(documents):
    by_region = {
        region: estimate_footprint({"prod": with_region(documents["prod"], region)}) for region in ("eu-north-1", "eu-west-3", "eu-central-1")
    }
    fleets = {region: items(report, "prod")["fleet/group"] for region, report in by_region.items()}
    assert fleets["eu-north-1"].use_kg < fleets["eu-west-3"].use_kg < fleets["eu-central-1"].use_kg  # Sweden, France, Germany
    assert fleets["eu-north-1"].embedded_kg == fleets["eu-central-1"].embedded_kg  # the same hardware, made once


def test_an_unknown_instance_type_is_reported_not_zero(documents):
    report = estimate_footprint({"prod": with_fleet_type(documents["prod"], "x9.huge")})
    fleet = items(report, "prod")["fleet/group"]
    assert fleet.total_kg is None and fleet.problem == "instance type 'x9.huge' is not in Boavizta's AWS archetypes"
    (stack,) = report.stacks
    assert stack.unknown == [fleet]


def test_managed_services_are_named_as_not_estimated(report):
    (spotilike,) = [stack for stack in report.stacks if stack.name == "spotilike"]
    assert {"eks/cluster (EKS control plane)", "static/cdn/distribution (CDN)", "alb/alb (load balancer)"} <= set(spotilike.not_estimated)
    assert items(report, "spotilike")["api/service"].detail == "1 x Fargate task 0.25 vCPU, as 0.125 of an m5.large"


def test_footprint_command_prints_tables_and_json(outdir, capsys):
    assert main(["footprint", "preprod", "--outdir", str(outdir)]) == 0
    output = capsys.readouterr().out
    assert "preprod (eu-west-3, grid FRA)" in output and "not estimated" in output
    assert main(["footprint", "prod", "--outdir", str(outdir), "--format", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["unit"] == "kgCO2e per month" and document["stacks"][0]["total_kg"] > 0


def test_cost_json_carries_the_same_footprint(outdir, capsys, report):
    assert main(["cost", "prod", "--outdir", str(outdir), "--format", "json"]) == 0
    footprint = json.loads(capsys.readouterr().out)["footprint"]
    assert footprint["stacks"][0]["total_kg"] == [stack.total_kg for stack in report.stacks if stack.name == "prod"][0]


def test_a_bad_load_and_a_missing_boavizta_are_clear_errors(documents, tmp_path, capsys, outdir):
    with pytest.raises(FootprintError, match="load_percent: 0 is not allowed"):
        estimate_footprint({"prod": documents["prod"]}, load_percent=0)
    with pytest.raises(FootprintError, match="boaviztapi's Python .* cannot run"):
        estimate_footprint({"prod": documents["prod"]}, environ={"SPAWNIT_BOAVIZTA_PYTHON": str(tmp_path / "missing" / "python")})
    assert main(["footprint", "prod", "--outdir", str(outdir), "--load", "120"]) == 2
    assert "load_percent: 120.0 is not allowed" in capsys.readouterr().err


def test_the_readme_footprint_table_is_what_the_stacks_weigh(report):
    from conftest import ROOT

    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index("| stack | kgCO2e / month |") + 2
    table = {}
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        name, figure = line.strip("|").split("|")
        table[name.split(":")[0].strip()] = float(figure)
    assert table == {stack.name: stack.total_kg for stack in report.stacks}


def test_an_instance_footprint_is_its_stacks_total_or_says_why_there_is_none(documents, report, outdir):
    summary = stack_footprint(documents["prod"], "prod")
    assert summary["total_kg"] == [stack.total_kg for stack in report.stacks if stack.name == "prod"][0] > 0
    assert summary["unit"] == "kgCO2e per month" and summary["problems"] == [] and "alb/alb (load balancer)" in summary["not_estimated"]

    unknown = stack_footprint(with_fleet_type(documents["prod"], "x9.huge"), "prod")
    assert unknown["problems"] == ["fleet/group: instance type 'x9.huge' is not in Boavizta's AWS archetypes"]

    docker = json.loads((outdir / "stacks" / "catalog-redis-docker" / "cdk.tf.json").read_text())
    assert stack_footprint(docker, "catalog-redis-docker") == {
        "total_kg": None,
        "note": "not estimated: no cloud machine in this stack (Boavizta's archetypes describe AWS instances)",
        "not_estimated": [],
    }
    missing = stack_footprint(documents["prod"], "prod", environ={"SPAWNIT_BOAVIZTA_PYTHON": "/nonexistent/python"})
    assert missing["total_kg"] is None and missing["note"].startswith("not estimated: boaviztapi's Python /nonexistent/python cannot run")


def test_a_process_asks_boavizta_once_per_request_and_again_after_an_error(documents, tmp_path):
    """A worker applying the same instance types again and again starts no new helper: the figures depend
    on the request alone. Counted through a Python that logs each start before running boaviztapi's."""
    from spawnit.footprint import boavizta_python

    calls, python = tmp_path / "calls", tmp_path / "python"
    python.write_text(f'#!/bin/sh\necho started >> {calls}\n[ -e {tmp_path / "broken"} ] && exit 3\nexec {boavizta_python()} "$@"\n')
    python.chmod(0o755)
    environ = {"SPAWNIT_BOAVIZTA_PYTHON": str(python)}
    (tmp_path / "broken").touch()
    with pytest.raises(FootprintError, match="boaviztapi failed"):
        estimate_footprint({"dev": documents["dev"]}, environ=environ)
    (tmp_path / "broken").unlink()
    first = estimate_footprint({"dev": documents["dev"]}, environ=environ).as_dict()
    assert estimate_footprint({"dev": documents["dev"]}, environ=environ).as_dict() == first
    assert calls.read_text().count("started") == 2  # the error was not kept; the same request was asked once
    estimate_footprint({"prod": documents["prod"]}, environ=environ)
    assert calls.read_text().count("started") == 3
