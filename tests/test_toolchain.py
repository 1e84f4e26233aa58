"""How jobs run the engine: settings checked at start, the CLI configuration (plugin cache, mirror), the
provider lock file kept beside the state, version constraints and the AWS endpoint in what is
synthesized, the store's credentials for the backend only. A stand-in engine records each call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spawnit.api.jobs import JobManager
from spawnit.api.store import LocalObjectStore, Store
from spawnit.api.toolchain import Toolchain, ToolchainError, parse_provider_versions
from standin import stand_in_tofu

LOCK = 'provider "registry.terraform.io/hashicorp/aws" {\n  version = "5.100.0"\n}\n'


def finished(jobs: JobManager, job_id: str) -> dict:
    deadline = time.monotonic() + 60
    while (record := jobs.get(job_id))["status"] not in ("succeeded", "failed", "cancelled", "interrupted"):
        assert time.monotonic() < deadline, "job did not end"
        time.sleep(0.05)
    return record


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("SPAWNIT_PROVIDER_MIRROR", "relative/mirror", "an existing absolute folder"),
        ("SPAWNIT_PROVIDER_MIRROR", "http://mirror.example.com/", "an https:// URL"),
        ("SPAWNIT_PROVIDER_VERSIONS", "aws=5.100.0", "NAMESPACE/TYPE=CONSTRAINT"),
        ("SPAWNIT_AWS_ENDPOINT", "localhost:4566", "an http:// or https:// URL"),
        ("SPAWNIT_S3_ACCESS_KEY_ID", "only-the-id", "both SPAWNIT_S3_ACCESS_KEY_ID and SPAWNIT_S3_SECRET_ACCESS_KEY"),  # names the missing one
    ],
)
def test_a_bad_engine_setting_stops_the_worker_with_exit_2_naming_it(tmp_path, variable, value, allowed):
    environ = {key: item for key, item in os.environ.items() if not key.startswith("SPAWNIT_")}
    environ |= {"SPAWNIT_DATA_DIR": str(tmp_path), "SPAWNIT_AUTH": "off", variable: value}
    result = subprocess.run([sys.executable, "-m", "spawnit", "serve", "--port", "1"], capture_output=True, text=True, env=environ, timeout=120)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("spawnit: SPAWNIT_") and variable in line and allowed in line and "Traceback" not in result.stderr


def test_provider_versions_parse_sources_and_constraints():
    assert parse_provider_versions("hashicorp/aws=5.100.0; kreuzwerker/docker = ~> 3.6 ;") == {"hashicorp/aws": "5.100.0", "kreuzwerker/docker": "~> 3.6"}
    with pytest.raises(ToolchainError, match="'hashicorp/aws' is not allowed"):
        parse_provider_versions("hashicorp/aws")


def test_the_cli_configuration_holds_the_shared_cache_and_the_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    filesystem = Toolchain.from_environment({"SPAWNIT_PROVIDER_MIRROR": str(mirror)}, tmp_path).cli_config()
    assert f'plugin_cache_dir = "{tmp_path / "plugin-cache"}"' in filesystem
    assert f'filesystem_mirror {{\n    path = "{mirror}"' in filesystem
    network = Toolchain.from_environment({"SPAWNIT_PROVIDER_MIRROR": "https://mirror.example.com/providers/"}, tmp_path).cli_config()
    assert 'network_mirror {\n    url = "https://mirror.example.com/providers/"' in network
    assert "provider_installation" not in Toolchain.from_environment({}, tmp_path).cli_config()  # the registries, by default


@pytest.fixture
def s3_jobs(tmp_path, synth_worker):
    """Jobs whose state is in S3 (the stand-in contacts nothing) with the store's own credentials set."""
    tofu = stand_in_tofu(tmp_path)
    store = Store(LocalObjectStore(tmp_path / "store"))
    store.put_spec("acme", "db", {"service": "postgresql", "target": "docker", "parameters": {}})
    environ = {**tofu[0], "TOFU_LOCK_FILE": LOCK, "AWS_ACCESS_KEY_ID": "target-key-id", "AWS_SECRET_ACCESS_KEY": "target-secret"}
    toolchain = Toolchain.from_environment({"SPAWNIT_S3_ACCESS_KEY_ID": "store-key-id", "SPAWNIT_S3_SECRET_ACCESS_KEY": "store-secret"}, tmp_path)
    state = {"kind": "s3", "bucket": "spawnit", "region": "us-east-1", "endpoint": "http://127.0.0.1:9"}
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work", environ=environ, state=state, toolchain=toolchain)
    return jobs, tofu[1]


def test_the_store_keys_reach_the_backend_only_and_a_docker_job_gets_no_aws_keys(s3_jobs):
    jobs, calls = s3_jobs
    assert finished(jobs, jobs.submit("acme", "db", "plan").id)["status"] == "succeeded"
    init, plan = [call for call in calls() if "argv" in call][:2]
    assert init["backend_config"] == ['access_key = "store-key-id"\nsecret_key = "store-secret"\n']
    for call in (init, plan):  # the server's AWS keys are the aws target's: a docker job never sees them
        assert "AWS_ACCESS_KEY_ID" not in call["environ"] and "AWS_SECRET_ACCESS_KEY" not in call["environ"]
        assert "store-secret" not in json.dumps(call["environ"]) and "target-secret" not in json.dumps(call["environ"])
    assert init["backend"]["s3"]["key"] == "clients/acme/db/terraform.tfstate" and "access_key" not in init["backend"]["s3"]


def test_the_provider_lock_file_is_kept_beside_the_state_and_given_to_the_next_job(s3_jobs):
    jobs, calls = s3_jobs
    first = jobs.submit("acme", "db", "plan")
    finished(jobs, first.id)
    assert jobs.store.objects.get("clients/acme/db/.terraform.lock.hcl").decode() == LOCK
    assert any("provider lock file kept beside the state" == event["data"] for event in jobs.snapshot(first.id))
    finished(jobs, jobs.submit("acme", "db", "plan").id)
    inits = [call for call in calls() if call.get("argv", [""])[0] == "init"]
    assert ".terraform.lock.hcl" not in inits[0]["files"] and ".terraform.lock.hcl" in inits[1]["files"]


def test_an_aws_endpoint_and_a_provider_version_reach_the_synthesized_stack(synth_worker, tmp_path):
    stack_dir = synth_worker.synth(
        service="postgresql",
        parameters={"target": "aws", "allowed_cidrs": ["203.0.113.0/24"]},
        client="acme",
        instance="db",
        outdir=str(tmp_path / "out"),
        state=None,
        target_settings={"aws_endpoint": "http://127.0.0.1:4566"},
        provider_versions={"hashicorp/aws": "5.100.0"},
    )
    document = json.loads((Path(stack_dir) / "cdk.tf.json").read_text())
    assert document["terraform"]["required_providers"]["aws"] == {"source": "hashicorp/aws", "version": "5.100.0"}
    [provider] = document["provider"]["aws"]
    assert (provider["skip_credentials_validation"], provider["skip_requesting_account_id"], provider["s3_use_path_style"]) == (True, True, True)
    # where the emulator answers is the job's environment, not the stack (see the next test)
    assert "endpoints" not in provider and "4566" not in json.dumps(document)


def test_an_aws_job_reaches_the_emulated_endpoint_through_the_provider_endpoint_variables_and_a_docker_job_does_not(synth_worker, tmp_path):
    """The AWS provider's "Custom Service Endpoints" guide: AWS_ENDPOINT_URL_<SERVICE> (the SDK's service id,
    upper case) sets one service's endpoint; the stand-in engine records the environment it was given."""
    environ, calls = stand_in_tofu(tmp_path)
    environ |= {"SPAWNIT_AWS_ACCESS_KEY_ID": "key-id", "SPAWNIT_AWS_SECRET_ACCESS_KEY": "a-secret-key"}
    toolchain = Toolchain.from_environment({"SPAWNIT_AWS_ENDPOINT": "http://127.0.0.1:4566"}, tmp_path)
    jobs = JobManager(Store(LocalObjectStore(tmp_path / "store")), synth_worker, workdir=tmp_path / "work", environ=environ, toolchain=toolchain)
    try:
        jobs.store.put_spec("acme", "db", {"service": "postgresql", "target": "aws", "parameters": {"allowed_cidrs": ["203.0.113.0/24"]}})
        jobs.store.put_spec("acme", "cache", {"service": "redis", "target": "docker", "parameters": {}})
        finished(jobs, jobs.submit("acme", "db", "plan").id)
        finished(jobs, jobs.submit("acme", "cache", "plan").id)
    finally:
        jobs.close()
    aws_plan, docker_plan = [call for call in calls() if call.get("argv", [""])[0] == "plan"]
    assert {name: value for name, value in aws_plan["environ"].items() if name.startswith("AWS_ENDPOINT_URL")} == {
        f"AWS_ENDPOINT_URL_{service}": "http://127.0.0.1:4566" for service in ("EC2", "IAM", "SSM", "STS")
    }
    assert not any(name.startswith("AWS_") for name in docker_plan["environ"])
    for plan in (aws_plan, docker_plan):  # the engine's Go runtime: the collector off until its memory limit
        assert (plan["environ"]["GOGC"], plan["environ"]["GOMEMLIMIT"]) == ("off", "1GiB")


def test_a_server_own_go_collector_setting_reaches_the_engine_unchanged(tmp_path):
    toolchain = Toolchain.from_environment({}, tmp_path)
    own = toolchain.environment({"PATH": "/usr/bin", "GOGC": "200"}, tmp_path / "cli.tfrc", {}, {})
    assert own["GOGC"] == "200" and "GOMEMLIMIT" not in own
    limited = toolchain.environment({"PATH": "/usr/bin", "GOMEMLIMIT": "3GiB"}, tmp_path / "cli.tfrc", {}, {})
    assert limited["GOMEMLIMIT"] == "3GiB" and "GOGC" not in limited


def test_without_settings_an_aws_instance_talks_to_aws_with_the_bindings_provider_version(synth_worker, tmp_path):
    stack_dir = synth_worker.synth(
        service="postgresql", parameters={"target": "aws", "allowed_cidrs": ["203.0.113.0/24"]}, client="acme", instance="db", outdir=str(tmp_path / "out"), state=None
    )
    document = json.loads((Path(stack_dir) / "cdk.tf.json").read_text())
    assert document["terraform"]["required_providers"]["aws"] == {"source": "hashicorp/aws", "version": "6.25.0"}
    assert "endpoints" not in document["provider"]["aws"][0] and "skip_credentials_validation" not in document["provider"]["aws"][0]


def test_every_synthesized_stack_names_its_providers_by_their_full_source(all_stacks):
    sources = {}
    for name, stack in all_stacks.items():
        for provider, requirement in stack.document["terraform"].get("required_providers", {}).items():
            assert "/" in requirement["source"], f"{name}: {provider} = {requirement['source']}"
            sources[provider] = requirement["source"]
    assert sources["aws"] == "hashicorp/aws" and sources["docker"] == "kreuzwerker/docker" and sources["cloudflare"] == "cloudflare/cloudflare"
