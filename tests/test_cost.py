"""spawnit cost: the estimate is read from synthesized JSON, hand-made here and real below."""

from __future__ import annotations

import json

import pytest

from spawnit.cli import main
from spawnit.cost import Assumptions, CostError, PriceTable, average_level, estimate, load_stacks, weekly_minutes, with_nat_gateways

PRICES = PriceTable.bundled("eu-west-3")
MONTH = PRICES.hours_per_month
T3_SMALL = PRICES.price("ec2_instance_hour", "t3.small")
GP3 = PRICES.price("ebs_gp3_gb_month")


def stack(resources: dict, region: str = "eu-west-3") -> dict:
    return {"provider": {"aws": [{"region": region}]}, "resource": resources}


def fleet(desired: int = 2, *, schedules: dict | None = None, instance_type: str = "t3.small") -> dict:
    resources = {
        "aws_launch_template": {"lt": {"instance_type": instance_type, "block_device_mappings": [{"ebs": {"volume_size": 20}}]}},
        "aws_autoscaling_group": {"asg": {"name": "app", "desired_capacity": desired, "launch_template": {"id": "${aws_launch_template.lt.id}"}}},
    }
    if schedules:
        resources["aws_autoscaling_schedule"] = schedules
    return stack(resources)


def only_item(report):
    (item,) = report.stacks[0].items
    return item


def total(document: dict, **options) -> float:
    return estimate({"s": document}, budget_usd=500, **options).total_usd


def test_an_always_on_fleet_bills_desired_capacity_all_month():
    assert total(fleet(2)) == pytest.approx(2 * (T3_SMALL * MONTH + 20 * GP3), abs=0.01)


def test_a_schedule_awake_50_hours_a_week_bills_50_of_168():
    schedules = {
        "sleep": {"autoscaling_group_name": "${aws_autoscaling_group.asg.name}", "recurrence": "0 19 * * 1-5", "time_zone": "Europe/Paris", "desired_capacity": 0},
        "wake": {"autoscaling_group_name": "${aws_autoscaling_group.asg.name}", "recurrence": "0 9 * * 1-5", "time_zone": "Europe/Paris", "desired_capacity": 2},
    }
    assert total(fleet(2, schedules=schedules)) == pytest.approx(total(fleet(2)) * 50 / 168, abs=0.01)


def test_the_weekend_stays_off_when_nothing_wakes_on_saturday_and_sunday():
    wake = weekly_minutes("0 9 * * 1-5")
    sleep = weekly_minutes("0 19 * * 1-5")
    assert average_level([(m, 2.0) for m in wake] + [(m, 0.0) for m in sleep], 2.0) * 168 == pytest.approx(100)


def test_eventbridge_days_count_sunday_as_1_and_names_work():
    assert weekly_minutes("cron(0 9 ? * MON-FRI *)") == weekly_minutes("cron(0 9 ? * 2-6 *)") == weekly_minutes("0 9 * * 1-5")


def test_multi_az_doubles_the_database():
    single = {"engine": "postgres", "instance_class": "db.t3.medium", "allocated_storage": 20, "multi_az": False}
    double = {**single, "multi_az": True}
    assert total(stack({"aws_db_instance": {"db": double}})) == pytest.approx(2 * total(stack({"aws_db_instance": {"db": single}})), abs=0.01)


def test_a_database_stopped_at_night_pays_compute_only_while_running_but_storage_always():
    db = {"engine": "postgres", "instance_class": "db.t3.micro", "allocated_storage": 20, "identifier": "shop-db"}
    schedules = {
        action: {
            "schedule_expression": f"cron(0 {hour} ? * MON-FRI *)",
            "target": {"arn": f"arn:aws:scheduler:::aws-sdk:rds:{action}DBInstance", "input": json.dumps({"DbInstanceIdentifier": "${aws_db_instance.db.identifier}"})},
        }
        for action, hour in (("stop", 19), ("start", 9))
    }
    compute = PRICES.price("rds_postgres_instance_hour", "db.t3.micro") * MONTH
    storage = 20 * PRICES.price("rds_gp3_gb_month")
    assert total(stack({"aws_db_instance": {"db": db}, "aws_scheduler_schedule": schedules})) == pytest.approx(compute * 50 / 168 + storage, abs=0.01)


def test_spot_takes_the_configured_discount():
    instance = {"instance_type": "t3.small", "root_block_device": {"volume_size": 30}}
    spot = {**instance, "instance_market_options": {"market_type": "spot"}}
    on_demand = total(stack({"aws_instance": {"box": instance}}))
    discounted = total(stack({"aws_instance": {"box": spot}}), assumptions=Assumptions(spot_discount=0.6))
    assert on_demand - discounted == pytest.approx(0.6 * T3_SMALL * MONTH, abs=0.01)


def test_an_unknown_instance_type_is_reported_not_zero():
    report = estimate({"s": fleet(2, instance_type="x9.mega")}, budget_usd=500)
    item = only_item(report)
    assert item.monthly_usd is None and "x9.mega" in item.problem
    assert report.unpriced == [item]


def test_an_unknown_resource_type_is_reported_not_zero():
    report = estimate({"s": stack({"aws_opensearch_domain": {"search": {}}})}, budget_usd=500)
    assert only_item(report).problem == "resource type aws_opensearch_domain has no price model"


def test_free_resources_are_not_listed():
    report = estimate({"s": stack({"aws_vpc": {"v": {}}, "aws_subnet": {"a": {}}})}, budget_usd=500)
    assert report.stacks[0].items == [] and report.total_usd == 0


def test_another_region_needs_a_price_file(tmp_path):
    with pytest.raises(CostError, match=r"region 'us-east-1' has no prices .*allowed: a price file for us-east-1 given with --prices"):
        estimate({"s": fleet(2) | stack({}, region="us-east-1")}, budget_usd=500, prices=PRICES)
    with pytest.raises(CostError, match=r"region: 'us-east-1' has no bundled price table; allowed: eu-west-3"):
        estimate({"s": stack({}, region="us-east-1")}, budget_usd=500)
    table = json.loads(json.dumps(PRICES.document))
    table["region"] = "us-east-1"
    path = tmp_path / "us-east-1.json"
    path.write_text(json.dumps(table))
    document = fleet(2)
    document["provider"]["aws"][0]["region"] = "us-east-1"
    assert estimate({"s": document}, budget_usd=500, prices=PriceTable.from_file(path)).total_usd > 0


def test_every_price_category_cites_its_source():
    for category, entry in PRICES.categories.items():
        publisher = "https://developers.cloudflare.com/r2/" if category.startswith("r2_") else "https://aws.amazon.com/"
        assert entry["source"].startswith(publisher), category
    assert PRICES.as_of and PRICES.region == "eu-west-3"


def test_nat_gateway_comparison_swaps_each_nat_instance_for_a_gateway(prod):
    swapped = with_nat_gateways(prod.document)
    assert len(swapped["resource"]["aws_nat_gateway"]) == 2 and len(swapped["resource"]["aws_eip"]) == 2
    assert "aws_network_interface" not in swapped["resource"] or not swapped["resource"]["aws_network_interface"]
    assert [body["name"] for body in swapped["resource"]["aws_autoscaling_group"].values()] == ["greenleaf-prod-app"]


# The real stacks --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real(all_stacks):
    stacks = {name: all_stacks[name].document for name in ("dev", "preprod", "prod")}
    return estimate(stacks, budget_usd=500, compare_nat_gateway=True)


def by_name(report, name):
    return next(stack for stack in report.stacks if stack.name == name)


def test_three_environments_fit_the_500_usd_budget(real):
    assert 0 < real.total_usd < 500 and not real.over_budget and real.unpriced == []


def test_preprod_fleet_is_billed_for_50_hours_a_week(real):
    item = next(item for item in by_name(real, "preprod").items if item.address == "fleet/group")
    assert "awake 50 h/week" in item.detail


def test_prod_database_is_multi_az_and_dev_is_one_spot_box_with_its_data_volume(real):
    assert any("Multi-AZ" in item.detail for item in by_name(real, "prod").items)
    items = {item.kind: item for item in by_name(real, "dev").items}
    assert set(items) == {"aws_instance", "aws_ebs_volume"}
    assert "spot" in items["aws_instance"].detail and items["aws_ebs_volume"].detail == "20 GB gp3 volume"


def test_nat_gateways_would_cost_more_than_nat_instances(real):
    for name in ("preprod", "prod"):
        assert real.compare[name].total_usd - by_name(real, name).total_usd > 50
    assert real.compare["dev"].total_usd == by_name(real, "dev").total_usd


# The command ------------------------------------------------------------------------------


def test_cost_json_for_machines(outdir, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["cost", "dev", "preprod", "prod", "--outdir", str(outdir), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [stack["name"] for stack in report["stacks"]] == ["dev", "preprod", "prod"]
    assert report["budget_usd"] == 500 and report["over_budget"] is False
    assert report["total_usd"] == pytest.approx(sum(stack["total_usd"] for stack in report["stacks"]), abs=0.02)


def test_cost_table_for_people_with_comparison(outdir, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["cost", "prod", "--outdir", str(outdir), "--compare", "nat-gateway"]) == 0
    output = capsys.readouterr().out
    assert "with NAT gateways" in output and "within budget" in output and "fleet/group" in output


def test_over_budget_fails_only_when_asked(outdir, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["cost", "prod", "--outdir", str(outdir), "--budget", "10"]) == 0
    assert main(["cost", "prod", "--outdir", str(outdir), "--budget", "10", "--fail-over-budget"]) == 1
    assert "OVER budget" in capsys.readouterr().out


def test_cost_without_synthesized_stacks_says_what_to_do(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["cost", "--outdir", str(tmp_path / "none")]) == 2
    assert "run 'spawnit synth' first" in capsys.readouterr().err


def test_cost_rejects_an_unknown_stack_and_a_bad_discount(outdir, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["cost", "staging", "--outdir", str(outdir)]) == 2
    assert "stack: 'staging' is not in" in capsys.readouterr().err
    assert main(["cost", "prod", "--outdir", str(outdir), "--spot-discount", "1.5"]) == 2
    assert "spot_discount: 1.5 is not allowed" in capsys.readouterr().err


def test_readme_cost_table_matches_the_estimate(real):
    import re

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    for stack in real.stacks:
        row = re.search(rf"^\| {stack.name}: [^|]+\| ([\d.]+) \| ([\d.]+) \|", readme, re.MULTILINE)
        assert row, f"no README cost row for {stack.name}"
        assert (float(row.group(1)), float(row.group(2))) == (stack.total_usd, real.compare[stack.name].total_usd)
    assert f"**{real.total_usd:.2f}**" in readme


def test_proxmox_guests_are_listed_as_on_premises_with_their_size_never_unpriced(outdir, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["cost", "catalog-redis-proxmox", "acme-pg-lxc", "--outdir", str(outdir), "--format", "json", "--fail-over-budget"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["unpriced"] == [] and report["total_usd"] == 0
    items = {stack["name"]: stack["items"] for stack in report["stacks"]}
    assert [(item["kind"], item["on_premises"], item["monthly_usd"]) for item in items["catalog-redis-proxmox"]] == [("proxmox_virtual_environment_vm", True, 0.0)]
    assert items["catalog-redis-proxmox"][0]["detail"] == "on-premises VM on node pve: 2 vCPU, 1024 MB, 20 GB on local-lvm"
    assert items["acme-pg-lxc"][0]["detail"] == "on-premises LXC container on node pve1: 2 vCPU, 1024 MB, 20 GB on local-lvm"
    assert main(["cost", "acme-pg-lxc", "--outdir", str(outdir)]) == 0
    assert "on-premises" in capsys.readouterr().out


def test_spotilike_prices_every_resource_with_stated_usage_and_lists_none_unpriced(outdir):
    report = estimate(load_stacks(outdir, ["spotilike", "spotilike-web"]), budget_usd=300)
    assert report.unpriced == []
    items = {item.address: item for stack in report.stacks for item in stack.items}
    assert items["api/service"].detail == "1 x Fargate task 0.25 vCPU / 0.5 GB"
    assert items["api/service"].monthly_usd == pytest.approx((0.25 * 0.04656 + 0.5 * 0.00511) * 730, abs=0.01)
    assert items["eks/cluster"].monthly_usd == pytest.approx(0.10 * 730, abs=0.01)
    assert items["eks/nodes"].detail == "2 x t3.medium nodes, 20 GB each"
    assert items["static/cdn/distribution"].detail == "50 GB out, 1,000,000 HTTPS requests"
    assert items["backup/vault"].detail == "20 GB of database snapshots"
    assert items["frontend/service"].detail.startswith("Network Load Balancer made by the cluster")  # the Service of type LoadBalancer
    assert "CloudFront distribution" in report.assumptions.describe()
    assert not report.over_budget
