"""Data tier: RDS PostgreSQL and ElastiCache Redis, private, encrypted, reachable only from the app fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

APP_GROUP = "greenleaf-prod-app"


def data_subnet_cidrs(stack, subnet_ids) -> set[str]:
    cidrs = set()
    for reference in subnet_ids:
        _, _, subnet = stack.resolve(reference)
        assert subnet["tags"]["Tier"] == "data"
        cidrs.add(subnet["cidr_block"])
    return cidrs


def test_db_subnet_group_spans_both_data_subnets(prod):
    assert data_subnet_cidrs(prod, prod.only("aws_db_subnet_group")["subnet_ids"]) == {"10.0.100.0/24", "10.0.200.0/24"}


def test_redis_subnet_group_spans_both_data_subnets(prod):
    assert data_subnet_cidrs(prod, prod.only("aws_elasticache_subnet_group")["subnet_ids"]) == {"10.0.100.0/24", "10.0.200.0/24"}


def test_postgres_is_gp3_20_gb_encrypted_with_7_days_of_backups(prod):
    db = prod.only("aws_db_instance")
    assert (db["engine"], db["storage_type"], db["allocated_storage"]) == ("postgres", "gp3", 20)
    assert db["storage_encrypted"] is True
    assert db["backup_retention_period"] == 7
    assert db["db_name"] == "medusa"


def test_postgres_is_never_public(all_stacks):
    for stack in all_stacks.values():
        for db in stack.resources("aws_db_instance").values():
            assert db["publicly_accessible"] is False


def test_master_password_is_managed_by_aws_and_never_in_the_json(prod):
    db = prod.only("aws_db_instance")
    assert db["manage_master_user_password"] is True
    assert "password" not in db


def test_prod_database_is_multi_az_db_t3_medium_protected_with_final_snapshot(prod):
    db = prod.only("aws_db_instance")
    assert (db["instance_class"], db["multi_az"]) == ("db.t3.medium", True)
    assert db["deletion_protection"] is True
    assert db["skip_final_snapshot"] is False and db["final_snapshot_identifier"]


def test_each_database_lifetime_leaves_a_final_snapshot_of_its_own_name(prod, tmp_path):
    """A fixed final snapshot name makes the second destroy fail (the first snapshot holds it). The
    name is the creation time, evaluated here by the real Terraform core, and kept by ignore_changes."""
    import re
    import subprocess
    import sys

    db = prod.only("aws_db_instance")
    assert db["lifecycle"]["ignore_changes"] == ["final_snapshot_identifier"]
    expression = db["final_snapshot_identifier"].removeprefix("${").removesuffix("}")
    assert "timestamp()" in expression

    def evaluate(created_at: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "tfcheck.terraform", "console"], input=expression.replace("timestamp()", f'"{created_at}"'), capture_output=True, text=True, cwd=tmp_path,
            env={"PATH": "/usr/bin:/bin", "TF_CLI_CONFIG_FILE": "/dev/null", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip().strip('"')

    first, second = evaluate("2026-11-23T10:00:00Z"), evaluate("2026-12-01T08:30:05Z")
    assert (first, second) == ("greenleaf-prod-db-final-20261123100000", "greenleaf-prod-db-final-20261201083005")
    for name in (first, second):  # RDS: a letter first, letters, digits and single hyphens, at most 255
        assert re.fullmatch(r"greenleaf-prod-db-final-\d{14}", name) and len(name) <= 255


def test_preprod_database_is_single_az_db_t3_micro_without_final_snapshot(preprod):
    db = preprod.only("aws_db_instance")
    assert (db["instance_class"], db["multi_az"]) == ("db.t3.micro", False)
    assert db["deletion_protection"] is False and db["skip_final_snapshot"] is True


def test_redis_7_single_node_cache_t3_micro_encrypted_at_rest_and_in_transit(prod):
    redis = prod.only("aws_elasticache_replication_group")
    assert redis["engine"] == "redis" and redis["engine_version"].startswith("7")
    assert redis["node_type"] == "cache.t3.micro"
    assert redis["num_cache_clusters"] == 1 and redis["automatic_failover_enabled"] is False
    assert str(redis["at_rest_encryption_enabled"]).lower() == "true"
    assert redis["transit_encryption_enabled"] is True


@pytest.mark.parametrize("port, group", [(5432, "greenleaf-prod-db"), (6379, "greenleaf-prod-redis")])
def test_data_tier_accepts_its_port_only_from_the_app_fleet_group(prod, port, group):
    rules = prod.ingress_rules(group=group)
    assert rules, f"no ingress on {group}"
    assert all(rule.peer == APP_GROUP and rule.protocol == "tcp" and rule.from_port == rule.to_port == port for rule in rules)


def test_only_the_app_fleet_reaches_5432_and_6379_anywhere(prod):
    for port in (5432, 6379):
        assert {rule.peer for rule in prod.ingress_rules(port=port) if rule.protocol == "tcp"} == {APP_GROUP}


@pytest.mark.parametrize("group", ["greenleaf-prod-db", "greenleaf-prod-redis"])
def test_data_tier_has_no_egress_to_the_internet(prod, group):
    assert prod.egress_rules(group=group) == []


def test_database_and_redis_use_their_own_groups(prod):
    db = prod.only("aws_db_instance")
    redis = prod.only("aws_elasticache_replication_group")
    assert [prod.group_name(ref) for ref in db["vpc_security_group_ids"]] == ["greenleaf-prod-db"]
    assert [prod.group_name(ref) for ref in redis["security_group_ids"]] == ["greenleaf-prod-redis"]
