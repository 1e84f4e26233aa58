"""What each environment contains, and what every stack shares: provider, tags, state, outputs."""

from __future__ import annotations

import json

import pytest
import yaml
from stackjson import written_files

EXPENSIVE = ("aws_lb", "aws_db_instance", "aws_elasticache_replication_group", "aws_nat_gateway", "aws_network_interface")


# Dev ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", EXPENSIVE)
def test_dev_has_no_alb_rds_elasticache_or_nat(dev, kind):
    assert dev.count(kind) == 0


def test_dev_is_one_spot_t3_small_in_a_public_subnet_with_a_public_ip(dev):
    box = dev.only("aws_instance")
    assert box["instance_type"] == "t3.small"
    assert box["instance_market_options"]["market_type"] == "spot"
    assert box["associate_public_ip_address"] is True
    _, _, subnet = dev.resolve(box["subnet_id"])
    assert subnet["tags"]["Tier"] == "public"


def test_dev_box_opens_http_to_all_and_no_ssh_by_default(dev):
    rules = dev.ingress_rules(group="greenleaf-dev-devbox")
    assert [(rule.peer, rule.from_port) for rule in rules] == [("0.0.0.0/0", 80)]


def test_dev_box_ssh_only_from_the_configured_list(dev_ssh):
    ssh = dev_ssh.ingress_rules(group="greenleaf-dev-devbox", port=22)
    assert [(rule.peer, rule.from_port) for rule in ssh] == [("203.0.113.7/32", 22)]


def test_dev_box_requires_imdsv2_and_encrypts_its_disk(dev):
    box = dev.only("aws_instance")
    assert box["metadata_options"]["http_tokens"] == "required"
    assert box["root_block_device"]["encrypted"] is True


def test_dev_box_runs_the_same_playbook_plus_postgres_and_redis_containers(dev, prod):
    dev_files = written_files(dev.only("aws_instance"))
    prod_files = written_files(prod.named("aws_launch_template", "name", "greenleaf-prod-app")[1])
    assert dev_files["/opt/spawnit/ansible/playbook.yml"] == prod_files["/opt/spawnit/ansible/playbook.yml"]
    override = yaml.safe_load(dev_files["/opt/spawnit/app/docker-compose.dev.yml"])
    assert {"postgres", "redis"} <= set(override["services"])
    assert "COMPOSE_FILES='docker-compose.yml docker-compose.dev.yml'" in dev_files["/opt/spawnit/boot.conf"]


def test_dev_box_ip_is_an_output(dev):
    (key,) = dev.resources("aws_instance")
    assert dev.outputs["devbox_public_ip"]["value"] == dev.ref("aws_instance", key, "public_ip")


# Preprod and prod -----------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["preprod", "prod"])
@pytest.mark.parametrize("kind", ["aws_lb", "aws_db_instance", "aws_elasticache_replication_group"])
def test_preprod_and_prod_have_the_full_architecture(all_stacks, environment, kind):
    assert all_stacks[environment].count(kind) == 1


@pytest.mark.parametrize("environment", ["preprod", "prod"])
def test_preprod_and_prod_have_two_nat_instances(all_stacks, environment):
    assert all_stacks[environment].count("aws_network_interface") == 2


def test_prod_has_alerts_and_budget_preprod_does_not(prod, preprod):
    assert prod.count("aws_budgets_budget") == 1 and prod.count("aws_cloudwatch_metric_alarm") == 3
    assert preprod.count("aws_budgets_budget") == 0


def test_only_preprod_sleeps(preprod, prod):
    assert preprod.count("aws_autoscaling_schedule") == 2
    assert prod.count("aws_autoscaling_schedule") == 0 and prod.count("aws_scheduler_schedule") == 0


@pytest.mark.parametrize("environment, outputs", [
    ("dev", {"devbox_public_ip"}),
    ("preprod", {"alb_dns_name", "site_url", "rds_endpoint", "redis_endpoint", "media_bucket", "media_url"}),
    ("prod", {"alb_dns_name", "site_url", "rds_endpoint", "redis_endpoint", "media_bucket", "media_url"}),
])
def test_outputs_per_environment(all_stacks, environment, outputs):
    assert set(all_stacks[environment].outputs) == outputs


def test_rds_and_redis_endpoints_are_outputs(prod):
    (db_key,) = prod.resources("aws_db_instance")
    (redis_key,) = prod.resources("aws_elasticache_replication_group")
    assert prod.outputs["rds_endpoint"]["value"] == prod.ref("aws_db_instance", db_key, "address")
    assert prod.outputs["redis_endpoint"]["value"] == prod.ref("aws_elasticache_replication_group", redis_key, "primary_endpoint_address")


# Every stack ----------------------------------------------------------------------------


@pytest.mark.parametrize("environment", ["dev", "preprod", "prod"])
def test_provider_is_paris_with_default_tags(all_stacks, environment):
    provider = all_stacks[environment].provider
    assert provider["region"] == "eu-west-3"
    assert provider["default_tags"] == [{"tags": {"project": "greenleaf", "environment": environment, "managed-by": "spawnit"}}]


@pytest.mark.parametrize("environment", ["dev", "preprod", "prod"])
def test_state_is_in_s3_encrypted_with_a_key_per_stack_and_locking(all_stacks, environment):
    backend = all_stacks[environment].backend["s3"]
    assert backend == {
        "bucket": "greenleaf-tfstate-eu-west-3",
        "key": f"greenleaf/{environment}/terraform.tfstate",
        "region": "eu-west-3",
        "encrypt": True,
        "dynamodb_table": "greenleaf-tf-lock",
        "use_lockfile": True,
    }


def test_local_state_with_a_flag(prod_custom):
    assert list(prod_custom.backend) == ["local"]


def test_stacks_pin_the_aws_provider(prod):
    assert prod.document["terraform"]["required_providers"]["aws"]["version"] == "6.25.0"


def test_alerts_nobody_receives_are_a_synth_warning(outdir):
    """Read back from the synthesis's manifest, where cdktf writes each construct's annotations."""
    stacks = json.loads((outdir / "manifest.json").read_text())["stacks"]

    def alert_warnings(stack: str) -> list[str]:
        return [note["message"] for note in stacks[stack]["annotations"] if note["level"] == "@cdktf/warn" and note["constructPath"] == f"{stack}/alerts"]

    assert alert_warnings("prod") == ["prod: alerts go to SNS topic greenleaf-prod-alerts, which nobody receives: set alert_emails"]
    assert alert_warnings("prod-custom") == []


def test_the_dev_box_keeps_its_data_on_a_volume_that_outlives_the_instance(dev):
    (instance_key,) = dev.resources("aws_instance")
    instance = dev.only("aws_instance")
    assert instance["lifecycle"]["ignore_changes"] == ["ami"], "a new Amazon Linux release must not replace the dev box"
    volume = dev.only("aws_ebs_volume")
    (volume_key,) = dev.resources("aws_ebs_volume")
    assert volume["encrypted"] is True and volume["type"] == "gp3"
    attachment = dev.only("aws_volume_attachment")
    assert attachment["volume_id"] == dev.ref("aws_ebs_volume", volume_key, "id")
    assert attachment["instance_id"] == dev.ref("aws_instance", instance_key, "id")
    files = written_files(instance)
    assert "${DATA_DIR:?set DATA_DIR in .env}/postgres:/var/lib/postgresql/data" in files["/opt/spawnit/app/docker-compose.dev.yml"]
    boot_conf = files["/opt/spawnit/boot.conf"]
    assert "DATA_DEVICE='/dev/sdf'" in boot_conf and attachment["device_name"] == "/dev/sdf"


def test_every_stack_pins_the_opentofu_versions_that_can_apply_it(all_stacks):
    for name, stack in all_stacks.items():
        assert stack.document["terraform"]["required_version"] == ">= 1.10.0", name
