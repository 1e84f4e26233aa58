"""Security gate: Checkov over the default stacks against a committed baseline, and the secure defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spawnit.shared import user_data_text
import yaml

from conftest import PLATFORM_VARIANTS, ROOT, TEST_STACKS, VARIANTS, run_checkov

BASELINE = ROOT / "security" / "checkov-baseline.yaml"
DEFAULT_STACKS = ("dev", "preprod", "prod")


def checkov_readable(stack: Path, folder: Path) -> Path:
    """A copy of ``stack`` Checkov can parse: its terraform_json parser takes every key of the
    ``terraform`` block for a block and fails the whole file on ``required_version`` (a string),
    which is valid Terraform JSON and no security matter, and on the top-level ``import`` list (its parser
    wants every block to be an object), which adopts existing resources and configures none; the copy
    leaves both out."""
    document = json.loads(stack.read_text())
    document.get("terraform", {}).pop("required_version", None)
    document.pop("import", None)
    copy = folder / stack.parent.name / "cdk.tf.json"
    copy.parent.mkdir(parents=True)
    copy.write_text(json.dumps(document, indent=2))
    return copy


@pytest.fixture(scope="session")
def checkov_report(outdir, artifacts, tmp_path_factory) -> dict:
    """Checkov's JSON report over every stack main.py synthesizes (one run for the session)."""
    folder = tmp_path_factory.mktemp("checkov")
    stacks = [checkov_readable(path, folder) for path in sorted(outdir.glob("stacks/*/cdk.tf.json")) if path.parent.name not in {**VARIANTS, **PLATFORM_VARIANTS, **dict.fromkeys(TEST_STACKS)}]
    assert len(stacks) > 20
    result, report = run_checkov(stacks, "terraform_json")
    assert result.returncode in (0, 1), result.stderr[-2000:]  # 1: findings, judged below
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, result.stderr[-3000:]
    (artifacts / "checkov-summary.txt").write_text(f"passed {summary['passed']}, failed {summary['failed']} (all failed checks are in the baseline)\n")
    return report


def baseline() -> dict[str, str]:
    return yaml.safe_load(BASELINE.read_text())


def test_every_checkov_finding_is_fixed_or_in_the_baseline(checkov_report):
    accepted = baseline()
    unexpected = sorted(
        {f"{check['check_id']} {check['resource']} ({check['check_name']})" for check in checkov_report["results"]["failed_checks"] if check["check_id"] not in accepted}
    )
    assert unexpected == []


def test_checkov_passes_most_checks(checkov_report):
    assert checkov_report["summary"]["passed"] > 600


def test_every_baseline_entry_has_a_one_line_reason_and_is_still_needed(checkov_report):
    accepted = baseline()
    failing = {check["check_id"] for check in checkov_report["results"]["failed_checks"]}
    for check_id, reason in accepted.items():
        assert isinstance(reason, str) and len(reason) > 20 and "\n" not in reason.strip(), check_id
    assert sorted(set(accepted) - failing) == [], f"baseline entries no finding needs any more: remove {sorted(set(accepted) - failing)}"


# Secure defaults ---------------------------------------------------------------------------


def every(all_stacks, kind):
    for name in DEFAULT_STACKS:
        for key, body in all_stacks[name].resources(kind).items():
            yield f"{name}/{key}", body


def test_imdsv2_is_required_on_every_launch_template_and_instance(all_stacks):
    found = list(every(all_stacks, "aws_launch_template")) + list(every(all_stacks, "aws_instance"))
    assert len(found) == 7
    for name, body in found:
        assert body["metadata_options"]["http_tokens"] == "required", name


def test_imds_tokens_reach_containers_on_app_hosts_and_go_no_further_than_the_host_elsewhere(all_stacks):
    """IMDSv2 answers a token request only within the hop limit; Docker's bridge adds a hop, so hosts
    whose containers use the instance role (media uploads) need 2. The NAT runs no container: 1."""
    found = list(every(all_stacks, "aws_launch_template")) + list(every(all_stacks, "aws_instance"))
    for name, body in found:
        runs_containers = "nat" not in body.get("name", "") and "docker" in user_data_text(body.get("user_data") or body.get("user_data_base64"))
        expected = 2 if runs_containers else 1
        assert body["metadata_options"]["http_put_response_hop_limit"] == expected, name
    assert {b["metadata_options"]["http_put_response_hop_limit"] for _, b in found} == {1, 2}


def test_every_disk_is_encrypted(all_stacks):
    for name, template in every(all_stacks, "aws_launch_template"):
        assert all(mapping["ebs"]["encrypted"] == "true" for mapping in template["block_device_mappings"]), name
    for name, instance in every(all_stacks, "aws_instance"):
        assert instance["root_block_device"]["encrypted"] is True, name


def test_rds_and_elasticache_are_encrypted(all_stacks):
    for name, db in every(all_stacks, "aws_db_instance"):
        assert db["storage_encrypted"] is True, name
    for name, redis in every(all_stacks, "aws_elasticache_replication_group"):
        assert str(redis["at_rest_encryption_enabled"]).lower() == "true" and redis["transit_encryption_enabled"] is True, name


def test_only_the_dev_box_http_is_open_to_the_internet_the_load_balancers_admit_cloudflare(all_stacks):
    allowed = {("greenleaf-dev-devbox", 80)}  # preprod's and prod's load balancers: Cloudflare's ranges only (test_edge)
    open_to_all = set()
    for name in DEFAULT_STACKS:
        for rule in all_stacks[name].ingress_rules():
            if rule.peer in ("0.0.0.0/0", "::/0"):
                open_to_all.add((rule.group, rule.from_port))
    assert open_to_all == allowed


def test_default_security_groups_allow_nothing(all_stacks):
    for name, group in every(all_stacks, "aws_default_security_group"):
        assert "ingress" not in group and "egress" not in group, name


def test_rds_is_never_public(all_stacks):
    assert all(db["publicly_accessible"] is False for _, db in every(all_stacks, "aws_db_instance"))


def test_every_bucket_blocks_public_access(all_stacks):
    for name in DEFAULT_STACKS:
        stack = all_stacks[name]
        buckets = {stack.ref("aws_s3_bucket", key) for key in stack.resources("aws_s3_bucket")}
        blocked = {body["bucket"] for body in stack.resources("aws_s3_bucket_public_access_block").values() if all(
            body[flag] for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"))}
        assert buckets == blocked, name


def test_prod_data_has_deletion_protection(prod):
    assert prod.only("aws_db_instance")["deletion_protection"] is True
    assert prod.only("aws_lb")["enable_deletion_protection"] is True


def test_readme_shows_the_current_pass_count(checkov_report):
    summary = checkov_report["summary"]
    readme = (ROOT / "README.md").read_text()
    assert f"**{summary['passed']} checks pass**" in readme and f"the {summary['failed']} findings left" in readme
