"""The reachability check: every declared flow allowed end to end, and planted faults found by name."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest

from spawnit.reachability import check_stack, render

ROOT = Path(__file__).resolve().parents[1]


def _report(stack, mutate=None):
    document = copy.deepcopy(stack.document)
    if mutate:
        mutate(document["resource"])
    return check_stack("planted", document)


def _only_key(resources: dict, kind: str, pattern: str) -> str:
    keys = [key for key in resources[kind] if re.search(pattern, key)]
    assert len(keys) == 1, f"{kind} matching {pattern}: {keys}"
    return keys[0]


def test_every_synthesized_stack_allows_each_declared_flow_end_to_end(all_stacks):
    failures = [line for name, stack in all_stacks.items() for line in check_stack(name, stack.document).failures]
    assert failures == []
    # the check has something to check: every stack with security groups declares its flows
    for name, stack in all_stacks.items():
        if stack.count("aws_security_group"):
            assert check_stack(name, stack.document).flows, f"{name} has security groups but declares no flow"
    assert {name: check_stack(name, stack.document).unused_rules for name, stack in all_stacks.items() if check_stack(name, stack.document).unused_rules} == {}


def test_spotilike_api_tasks_can_reach_the_database(all_stacks):
    """Defect: the tasks' group had only a tcp/443 egress; the provider removes AWS's allow-all egress, so
    every connection to 5432 was dropped at the task. The flow is now written at both ends."""
    report = check_stack("spotilike", all_stacks["spotilike"].document)
    flow = next(flow for flow in report.flows if flow.name == "spotilike-api-tasks -> spotilike-db")
    assert flow.ok and flow.port == "tcp/5432"
    egress = all_stacks["spotilike"].resources("aws_vpc_security_group_egress_rule")
    assert any(rule.get("from_port") == 5432 and "database" in rule.get("referenced_security_group_id", "") for rule in egress.values())


def test_a_removed_egress_is_reported_with_both_ends_and_the_port(all_stacks):
    def remove_egress(resources):
        del resources["aws_vpc_security_group_egress_rule"][_only_key(resources, "aws_vpc_security_group_egress_rule", "tcp5432")]

    report = _report(all_stacks["spotilike"], remove_egress)
    assert report.failures == ["planted: spotilike-api-tasks -> spotilike-db tcp/5432: spotilike-api-tasks has no egress rule to spotilike-db (or 0.0.0.0/0) covering tcp/5432"]
    assert "BLOCKED  spotilike-api-tasks -> spotilike-db" in render([report])


def test_a_flow_to_a_group_that_admits_another_port_is_reported(all_stacks):
    def wrong_port(resources):
        rule = resources["aws_vpc_security_group_ingress_rule"][_only_key(resources, "aws_vpc_security_group_ingress_rule", "database_sg_in-tcp5432")]
        rule["from_port"] = rule["to_port"] = 5433

    report = _report(all_stacks["prod"], wrong_port)
    assert report.failures == [
        "planted: greenleaf-prod-app -> greenleaf-prod-db tcp/5432: greenleaf-prod-db has no ingress rule from greenleaf-prod-app covering tcp/5432"
    ]
    # the rule no flow uses is listed too
    assert any("database_sg_in-tcp5432" in entry for entry in report.unused_rules)


def test_a_removed_route_to_the_nat_is_reported_with_the_subnet_and_table(all_stacks):
    def remove_route(resources):
        del resources["aws_route"][_only_key(resources, "aws_route", "app-eu-west-3a-default")]

    report = _report(all_stacks["prod"], remove_route)
    assert report.failures == [
        "planted: greenleaf-prod-app -> internet all traffic: subnet greenleaf-prod-app-eu-west-3a: route table greenleaf-prod-app-eu-west-3a has no 0.0.0.0/0 route"
    ]


def test_a_nat_interface_that_does_not_admit_the_subnet_is_reported(all_stacks):
    def narrow_nat(resources):
        rule = resources["aws_vpc_security_group_ingress_rule"][_only_key(resources, "aws_vpc_security_group_ingress_rule", "nat-sg_in-all")]
        rule["cidr_ipv4"] = "10.20.1.0/24"  # the public subnet only, not the app subnets

    failures = _report(all_stacks["spotilike"], narrow_nat).failures
    assert any("spotilike-api-tasks -> internet tcp/443: the NAT interface" in line and "(10.20.10.0/24)" in line for line in failures), failures


def test_a_nat_gateway_flow_follows_the_gateway_to_its_internet_route(all_stacks):
    stack = all_stacks["prod-gateway"]
    assert check_stack("prod-gateway", stack.document).failures == []

    def unroute_public(resources):
        del resources["aws_route"][_only_key(resources, "aws_route", "public-default")]

    failures = _report(stack, unroute_public).failures
    assert any("the NAT greenleaf-prod-nat-eu-west-3a sits in subnet greenleaf-prod-public-eu-west-3a" in line for line in failures), failures


def test_a_subnet_left_on_the_main_route_table_is_reported(all_stacks):
    def unassociate(resources):
        del resources["aws_route_table_association"][_only_key(resources, "aws_route_table_association", "app-eu-west-3b-association")]

    failures = _report(all_stacks["preprod"], unassociate).failures
    assert failures == [
        "planted: greenleaf-preprod-app -> internet all traffic: subnet greenleaf-preprod-app-eu-west-3b has no route table association "
        "(the VPC's main table has no route out)"
    ]


def test_ports_open_to_the_whole_internet_are_listed(all_stacks):
    report = check_stack("catalog-gitea-aws", all_stacks["catalog-gitea-aws"].document)
    assert report.open_to_internet == ["catalog-gitea-aws tcp/2222 from 0.0.0.0/0", "catalog-gitea-aws tcp/3000 from 0.0.0.0/0"]
    # a looked-up subnet is said to be outside the stack, not silently passed
    internet = next(flow for flow in report.flows if flow.name.endswith("-> internet"))
    assert internet.ok and any("outside the stack" in note for note in internet.notes)


def test_spawnit_check_prints_the_table_and_fails_on_a_blocked_flow(outdir, tmp_path, all_stacks):
    run = subprocess.run([sys.executable, "-m", "spawnit", "check", "--outdir", str(outdir), "prod", "spotilike"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    assert "ok       greenleaf-prod-app -> greenleaf-prod-db" in run.stdout
    assert re.search(r"\d+ of \d+ declared flows allowed end to end in 2 stacks", run.stdout)

    import json

    broken = tmp_path / "out" / "stacks" / "spotilike"
    broken.mkdir(parents=True)
    document = copy.deepcopy(all_stacks["spotilike"].document)
    egress = document["resource"]["aws_vpc_security_group_egress_rule"]
    del egress[_only_key(document["resource"], "aws_vpc_security_group_egress_rule", "tcp5432")]
    (broken / "cdk.tf.json").write_text(json.dumps(document))
    run = subprocess.run([sys.executable, "-m", "spawnit", "check", "--outdir", str(tmp_path / "out")], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 1
    assert "BLOCKED  spotilike-api-tasks -> spotilike-db" in run.stdout
    assert "missing: spotilike-api-tasks has no egress rule to spotilike-db" in run.stdout

    run = subprocess.run([sys.executable, "-m", "spawnit", "check", "--outdir", str(tmp_path / "out"), "prdo"], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and "STACK: 'prdo' is not allowed; allowed: spotilike" in run.stderr


def test_security_group_rules_are_written_only_by_the_security_group_class():
    """The class of bug behind the Spotilike defect: a rule written directly can make half a connection.
    Every construct goes through SecurityGroup, whose flows write both ends."""
    offenders = []
    for path in (ROOT / "spawnit").rglob("*.py"):
        if path.name == "security.py" and path.parent.name == "constructs":
            continue
        text = path.read_text()
        if re.search(r"VpcSecurityGroup(Ingress|Egress)Rule\(|SecurityGroupRule\(|aws_security_group_rule", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


@pytest.mark.parametrize("name", ["prod", "spotilike"])
def test_a_flow_between_two_groups_is_written_at_both_ends(all_stacks, name):
    stack = all_stacks[name]
    ingress = {(r["security_group_id"], r.get("referenced_security_group_id"), r.get("from_port")) for r in stack.resources("aws_vpc_security_group_ingress_rule").values()}
    egress = {(r.get("referenced_security_group_id"), r["security_group_id"], r.get("from_port")) for r in stack.resources("aws_vpc_security_group_egress_rule").values()}
    group_to_group = {entry for entry in ingress if entry[1]}
    assert group_to_group and group_to_group <= egress
