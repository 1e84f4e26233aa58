"""The orchestrator's whole loop, for real: a real engine (OpenTofu or Terraform, found on this machine)
running the real AWS provider plugin (from the machine's filesystem mirror) against moto's server,
through a real API replica and a real `spawnit worker` on Redis, the store on the same moto's S3
(specs, job records and logs, state, its lock and the provider lock file).

The emulator's departures from AWS are listed in tests/emulator.py; each is the emulator's, none is
SpawnIt's. The instance is a catalog `postgresql` on the `aws` target: an EC2 instance, its security
group and rules, an IAM role and profile, and the password in SSM Parameter Store.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time

import httpx
import pytest
from cryptography.fernet import Fernet

from conftest import free_port, redis_server, wait_until
from emulator import Emulator
from processes import Cluster

pytestmark = pytest.mark.engine

REGION = "eu-west-3"
BUCKET = "spawnit"
STALE_AFTER = 10
FINAL = ("succeeded", "failed", "cancelled", "interrupted")
STORE_KEYS = ("store-key-id", "store-secret-key")  # the store's own credentials: never a job's provider's
TARGET_KEYS = ("target-key-id", "target-secret-key")
POSTGRES = {"service": "postgresql", "target": "aws", "parameters": {"allowed_cidrs": ["203.0.113.0/24"], "aws_region": REGION}}


@pytest.fixture(scope="module")
def emulator():
    emulator = Emulator(free_port(), region=REGION)
    emulator.client("s3", "us-east-1").create_bucket(Bucket=BUCKET)
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def platform(tmp_path_factory, real_engine, emulator, docker_engine):
    """An API replica without workers of its own and one `spawnit worker`, as the platform runs them."""
    root = tmp_path_factory.mktemp("engine-loop")
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("SPAWNIT_", "AWS_", "TF_", "TOFU_"))}
    with redis_server(tmp_path_factory.mktemp("redis")) as redis_url:
        environ |= {
            "SPAWNIT_REDIS_URL": redis_url,
            "SPAWNIT_S3_ENDPOINT": emulator.endpoint,
            "SPAWNIT_S3_BUCKET": BUCKET,
            "SPAWNIT_S3_ACCESS_KEY_ID": STORE_KEYS[0],
            "SPAWNIT_S3_SECRET_ACCESS_KEY": STORE_KEYS[1],
            "AWS_ACCESS_KEY_ID": TARGET_KEYS[0],
            "AWS_SECRET_ACCESS_KEY": TARGET_KEYS[1],
            "AWS_REGION": "us-east-1",
            "SPAWNIT_AWS_ENDPOINT": emulator.endpoint,
            "SPAWNIT_TOFU": real_engine["path"],
            "SPAWNIT_PROVIDER_MIRROR": real_engine["mirror"],
            "SPAWNIT_PROVIDER_VERSIONS": f"hashicorp/aws={real_engine['aws_version']}",
            "SPAWNIT_PLUGIN_CACHE": str(root / "plugin-cache"),
            "SPAWNIT_SECRET_KEY": Fernet.generate_key().decode(),
            "SPAWNIT_AUTH": "off",
            "SPAWNIT_JOB_STALE_AFTER": str(STALE_AFTER),
            "SPAWNIT_DRIFT_INTERVAL": "86400",
            "DOCKER_HOST": docker_engine[0],  # the docker target's engine, as the worker reaches it
        }
        cluster = Cluster(root, environ, lambda: [])
        try:
            cluster.start_api("api")
            cluster.start_worker("worker")
            yield cluster
        finally:
            for process in cluster.processes.values():
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def api(platform):
    with httpx.Client(base_url=platform.urls["api"], timeout=30) as client:
        yield client


def run(api: httpx.Client, client: str, instance: str, action: str, timeout: float = 300, body: dict | None = None) -> dict:
    response = api.post(f"/api/clients/{client}/instances/{instance}/{action}", json=body)
    assert response.status_code == 202, response.text
    return ended(api, response.json()["job"], timeout)


def ended(api: httpx.Client, job: str, timeout: float = 300) -> dict:
    """The job's record once it has ended. Its event stream is followed to its end, as the web page does
    (polling the record ten times a second cost the API and the emulator more CPU than the engine's jobs
    cost the engine); the record is read after, and polled should the stream drop or outlive the deadline."""
    deadline = time.monotonic() + timeout
    with contextlib.suppress(httpx.HTTPError), api.stream("GET", f"/api/jobs/{job}/events", timeout=httpx.Timeout(30, read=40)) as response:
        for _ in response.iter_lines():  # a ping every 15 s while the job is quiet
            if time.monotonic() > deadline:
                break
    left = max(deadline - time.monotonic(), 5)
    return wait_until(lambda: (record := api.get(f"/api/jobs/{job}").json())["status"] in FINAL and record, left, f"job {job} ended", interval=0.5)


def log_text(api: httpx.Client, job: str) -> str:
    with api.stream("GET", f"/api/jobs/{job}/events") as response:
        return "\n".join(line for line in response.iter_lines() if line.startswith("data:"))


def create(api: httpx.Client, client: str, instance: str) -> dict:
    response = api.post(f"/api/clients/{client}/instances", json={**POSTGRES, "instance": instance})
    assert response.status_code == 201, response.text
    return response.json()


def prefix(client: str, instance: str) -> str:
    return f"{client}-{instance}"


def instances_of(emulator: Emulator, client: str, instance: str, states=("pending", "running", "stopping", "stopped")) -> list[dict]:
    reservations = emulator.client("ec2").describe_instances(
        Filters=[{"Name": "tag:spawnit-instance", "Values": [prefix(client, instance)]}, {"Name": "instance-state-name", "Values": list(states)}]
    )["Reservations"]
    return [item for reservation in reservations for item in reservation["Instances"]]


def state_of(emulator: Emulator, client: str, instance: str) -> dict | None:
    try:
        body = emulator.client("s3").get_object(Bucket=BUCKET, Key=f"clients/{client}/{instance}/terraform.tfstate")["Body"].read()
    except emulator.client("s3").exceptions.NoSuchKey:
        return None
    return json.loads(body)


@pytest.fixture(scope="module")
def deployed(api, emulator):
    """acme/pg created, planned and applied once: (plan record, apply record)."""
    create(api, "acme", "pg")
    plan = run(api, "acme", "pg", "plan")
    apply = run(api, "acme", "pg", "apply", body={"plan": plan["id"]})  # the reviewed plan, exactly
    return plan, apply


def test_a_service_added_as_a_template_file_is_planned_and_applied_by_the_real_engine_and_provider(api, emulator):
    from test_templates import MOSQUITTO

    published = api.put("/api/catalog/mosquitto", content=MOSQUITTO.encode(), headers={"Content-Type": "application/yaml"})
    assert published.status_code == 201, published.text  # into the store on the emulator's S3: the worker reads it there
    body = {"service": "mosquitto", "target": "aws", "instance": "mqtt", "parameters": {"allowed_cidrs": ["203.0.113.0/24"], "aws_region": REGION}}
    assert api.post("/api/clients/acme/instances", json=body).status_code == 201
    plan = run(api, "acme", "mqtt", "plan")
    assert (plan["status"], plan["changes"], plan["plan"]["inputs"]["service_version"]) == ("succeeded", True, "1.0.0"), log_text(api, plan["id"])
    created = {change["address"] for change in plan["changed"] if change["actions"] == ["create"]}
    assert {"aws_instance.instance", "aws_ec2_instance_state.running"} <= created and not any("ssm_parameter" in address for address in created)  # no secret
    apply = run(api, "acme", "mqtt", "apply", body={"plan": plan["id"]})
    assert apply["status"] == "succeeded", log_text(api, apply["id"])
    [instance] = instances_of(emulator, "acme", "mqtt")
    assert instance["State"]["Name"] == "running"
    [group] = emulator.client("ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": ["acme-mqtt"]}])["SecurityGroups"]
    assert [(rule["FromPort"], rule["IpRanges"][0]["CidrIp"]) for rule in group["IpPermissions"]] == [(1883, "203.0.113.0/24")]


def test_the_worker_says_which_engine_it_runs_and_which_targets_it_reaches(platform, real_engine):
    log = platform.log("worker")
    assert f"spawnit worker: engine: {real_engine['name']} {real_engine['version']} ({real_engine['path']})" in log
    # STS answered the worker with the keys an aws job gets (the host's own, no SPAWNIT_AWS_* set), through the emulator
    assert re.search(r"spawnit worker: target aws: reachable \(the host's AWS settings, endpoint http://127\.0\.0\.1:\d+; signed in as arn:aws:", log), log
    assert re.search(r"spawnit worker: target docker: reachable \(the host's Docker settings; unix://\S+/docker.sock: Docker \d+\.\d+", log), log
    assert TARGET_KEYS[1] not in log and STORE_KEYS[1] not in log


def test_the_first_plan_finds_every_resource_to_create_and_the_apply_creates_them(deployed, api, emulator, real_engine):
    plan, apply = deployed
    assert (plan["status"], plan["exit_code"], plan["changes"]) == ("succeeded", 2, True), log_text(api, plan["id"])
    created = {change["address"] for change in plan["changed"] if change["actions"] == ["create"]}
    assert {"aws_instance.instance", "aws_ssm_parameter.secret-password"} <= created
    assert (apply["status"], apply["exit_code"]) == ("succeeded", 0), log_text(api, apply["id"])
    assert apply["engine"] == f"{real_engine['name']} {real_engine['version']}"
    [instance] = instances_of(emulator, "acme", "pg")
    assert instance["State"]["Name"] == "running" and instance["MetadataOptions"]["HttpTokens"] == "required"


def test_applying_a_reviewed_plan_applies_exactly_that_file(deployed, api, emulator, real_engine):
    plan, apply = deployed
    basis = plan["plan"]
    assert apply["applies_plan"] == plan["id"] and apply["auto_approved"] is False
    text = log_text(api, apply["id"])
    assert f"applying reviewed plan {plan['id']} (sha256 {basis['sha256'][:12]})" in text
    assert re.search(r"\$ (terraform|tofu) apply -input=false -no-color tfplan\b", text), text  # the saved file, no new plan
    assert "-auto-approve" not in text
    review = api.get(f"/api/jobs/{plan['id']}/plan").json()
    created = {entry["address"] for entry in review["diff"]["resources"] if entry["action"] == "create"}
    assert review["diff"]["summary"] == f"Plan: {len(created)} to add, 0 to change, 0 to destroy." == basis["summary"]
    assert f"Apply complete! Resources: {len(created)} added, 0 changed, 0 destroyed." in text
    state = state_of(emulator, "acme", "pg")
    managed = {f"{resource['type']}.{resource['name']}" for resource in state["resources"] if resource["mode"] == "managed"}
    assert managed == created
    # the password is sensitive in the plan: masked in the review, never in clear
    revealed = api.post("/api/clients/acme/instances/pg/secrets/password/reveal").json()["value"]
    assert revealed not in json.dumps(review)


def change_cidrs(api: httpx.Client, cidrs: list[str]) -> None:
    response = api.patch("/api/clients/acme/instances/pg", json={"parameters": {"allowed_cidrs": cidrs}})
    assert response.status_code == 200, response.text


def test_a_stale_plan_is_refused_with_409_naming_what_moved_and_a_tampered_plan_file_is_never_applied(deployed, api, emulator, platform):
    original = POSTGRES["parameters"]["allowed_cidrs"]
    try:
        change_cidrs(api, ["198.51.100.0/24"])
        first = run(api, "acme", "pg", "plan")
        review = api.get(f"/api/jobs/{first['id']}/plan").json()["diff"]
        assert review["counts"] and any("198.51.100.0/24" in json.dumps(entry) for entry in review["resources"]), review
        # the parameters moved since the plan: refused, naming the parameter, before any job starts
        change_cidrs(api, ["192.0.2.0/24"])
        refused = api.post("/api/clients/acme/instances/pg/apply", json={"plan": first["id"]})
        assert refused.status_code == 409, refused.text
        assert 'parameter allowed_cidrs changed (["198.51.100.0/24"] -> ["192.0.2.0/24"])' in refused.json()["error"]
        # a plan file swapped in the store (another plan of the same instance): the worker refuses it by its hash
        change_cidrs(api, ["198.51.100.0/24"])
        second = run(api, "acme", "pg", "plan")
        s3 = emulator.client("s3")
        other = s3.get_object(Bucket=BUCKET, Key=f"clients/acme/pg/plans/{first['id']}/tfplan")["Body"].read()
        genuine = s3.get_object(Bucket=BUCKET, Key=f"clients/acme/pg/plans/{second['id']}/tfplan")["Body"].read()
        s3.put_object(Bucket=BUCKET, Key=f"clients/acme/pg/plans/{second['id']}/tfplan", Body=other)
        swapped = run(api, "acme", "pg", "apply", body={"plan": second["id"]})
        assert swapped["status"] == "failed" and "is not the one reviewed" in swapped["error"], swapped
        assert " apply " not in log_text(api, swapped["id"])  # the engine never ran apply
        s3.put_object(Bucket=BUCKET, Key=f"clients/acme/pg/plans/{second['id']}/tfplan", Body=genuine)
        serial = state_of(emulator, "acme", "pg")["serial"]
        applied = run(api, "acme", "pg", "apply", body={"plan": second["id"]})
        assert applied["status"] == "succeeded", log_text(api, applied["id"])
        # the state moved since the first plan; the second was applied once already: both refused
        moved = state_of(emulator, "acme", "pg")["serial"]
        again = api.post("/api/clients/acme/instances/pg/apply", json={"plan": first["id"]})
        assert again.status_code == 409 and f"the state moved (serial {serial} -> {moved})" in again.json()["error"], again.text
        twice = api.post("/api/clients/acme/instances/pg/apply", json={"plan": second["id"]})
        assert twice.status_code == 409 and f"it was applied already (job {applied['id']})" in twice.json()["error"], twice.text
    finally:
        change_cidrs(api, original)
        assert run(api, "acme", "pg", "apply", body={"auto_approve": True})["status"] == "succeeded"


def test_deploy_without_a_plan_makes_a_plan_for_review_and_changes_nothing(api, emulator):
    create(api, "acme", "reviewed")
    response = api.post("/api/clients/acme/instances/reviewed/apply")
    assert response.status_code == 202 and response.json()["action"] == "plan" and response.json()["review"] is True
    plan = ended(api, response.json()["job"])
    assert (plan["action"], plan["status"], plan["changes"]) == ("plan", "succeeded", True)
    assert plan["plan"]["state"] is None and plan["plan"]["made_by"]
    assert instances_of(emulator, "acme", "reviewed") == []  # nothing applied until the plan is
    removed = api.delete("/api/clients/acme/instances/reviewed")
    assert removed.status_code == 202 and ended(api, removed.json()["job"])["status"] == "succeeded"


def test_the_instance_outputs_appear_in_the_api(deployed, api, emulator):
    spec = api.get("/api/clients/acme/instances/pg").json()
    [instance] = instances_of(emulator, "acme", "pg")
    assert spec["outputs"]["public_ip"] == instance["PublicIpAddress"]
    assert spec["outputs"]["port_5432_tcp"] == "5432/tcp"
    assert spec["drift"] == "compliant" and spec["deployed_at"]


def test_a_second_plan_finds_no_change(deployed, api):
    record = run(api, "acme", "pg", "plan")
    assert (record["status"], record["exit_code"], record["changes"]) == ("succeeded", 0, False), record.get("changed")


def test_the_service_received_the_instance_own_generated_secret_never_shown_in_a_record_or_log(deployed, api, emulator):
    revealed = api.post("/api/clients/acme/instances/pg/secrets/password/reveal").json()["value"]
    parameter = emulator.client("ssm").get_parameter(Name="/spawnit/acme-pg/password", WithDecryption=True)["Parameter"]
    assert parameter["Type"] == "SecureString" and parameter["Value"] == revealed and len(revealed) >= 32
    plan, apply = deployed
    for job in (plan, apply):
        assert revealed not in json.dumps(api.get(f"/api/jobs/{job['id']}").json()) and revealed not in log_text(api, job["id"])
    assert revealed not in json.dumps(api.get("/api/clients/acme/instances/pg").json())


def test_the_provider_lock_file_and_the_state_live_in_the_store_and_the_store_keys_stay_out_of_the_state(deployed, emulator, real_engine):
    lock = emulator.client("s3").get_object(Bucket=BUCKET, Key="clients/acme/pg/.terraform.lock.hcl")["Body"].read().decode()
    assert f'provider "{real_engine["aws_host"]}/hashicorp/aws"' in lock and f'version     = "{real_engine["aws_version"]}"' in lock
    state = state_of(emulator, "acme", "pg")
    assert {resource["type"] for resource in state["resources"]} >= {"aws_instance", "aws_security_group", "aws_ssm_parameter"}
    assert STORE_KEYS[1] not in json.dumps(state)
    locks = emulator.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="clients/acme/pg/terraform.tfstate.tflock").get("KeyCount", 0)
    assert locks == 0  # the engine released its state lock


def test_a_rule_revoked_behind_spawnit_back_is_drift_naming_the_resource_and_an_apply_restores_it(deployed, api, emulator):
    ec2 = emulator.client("ec2")
    [group] = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["acme-pg"]}])["SecurityGroups"]
    [rule] = [rule for rule in ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group["GroupId"]]}])["SecurityGroupRules"] if rule["FromPort"] == 5432]
    ec2.revoke_security_group_ingress(GroupId=group["GroupId"], SecurityGroupRuleIds=[rule["SecurityGroupRuleId"]])

    checked_before = api.get("/api/clients/acme/instances/pg").json().get("drift_checked_at")
    assert "acme/pg" in api.post("/api/drift-checks").json()["instances"]  # the next drift round, started now
    spec = wait_until(lambda: (found := api.get("/api/clients/acme/instances/pg").json()).get("drift_checked_at") != checked_before and found, 300, "drift round")
    assert spec["drift"] == "drifted" and api.get(f"/api/jobs/{spec['drift_check']['job']}").json()["changes"] is True
    assert spec["last_job"]["requested_by"] != "drift"  # the round's check did not take the place of the user's last job
    assert [address for address in spec["drift_resources"] if address.startswith("aws_vpc_security_group_ingress_rule.")], spec["drift_resources"]
    detail = api.get("/api/clients/acme/instances/pg/drift").json()
    [gone] = [entry for entry in detail["diff"]["drift"] if entry["address"].startswith("aws_vpc_security_group_ingress_rule.")]
    assert gone["action"] == "deleted outside" and detail["plan"] == spec["drift_plan"]

    assert run(api, "acme", "pg", "apply", body={"plan": spec["drift_plan"]})["status"] == "succeeded"  # restore: the round's plan, reviewed
    restored = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group["GroupId"]]}])["SecurityGroupRules"]
    assert [rule for rule in restored if rule["FromPort"] == 5432 and rule["CidrIpv4"] == "203.0.113.0/24"]
    checked_before = api.get("/api/clients/acme/instances/pg").json().get("drift_checked_at")
    api.post("/api/drift-checks")  # the following round: in sync
    spec = wait_until(lambda: (found := api.get("/api/clients/acme/instances/pg").json()).get("drift_checked_at") != checked_before and found, 300, "drift round")
    assert spec["drift"] == "compliant" and spec["drift_resources"] == []


def drifted_then_applied(api: httpx.Client, resource: str) -> None:
    """A plan finds the instance drifted, naming ``resource``; an apply succeeds."""
    plan = run(api, "acme", "pg", "plan")
    spec = api.get("/api/clients/acme/instances/pg").json()
    assert spec["drift"] == "drifted" and resource in spec["drift_resources"], spec["drift_resources"]
    assert run(api, "acme", "pg", "apply", body={"plan": plan["id"]})["status"] == "succeeded"


def test_a_stopped_instance_is_drift_and_an_apply_starts_it_again(deployed, api, emulator):
    [instance] = instances_of(emulator, "acme", "pg")
    emulator.client("ec2").stop_instances(InstanceIds=[instance["InstanceId"]])
    drifted_then_applied(api, "aws_ec2_instance_state.running")
    [started] = instances_of(emulator, "acme", "pg")
    assert started["State"]["Name"] == "running"
    # A restarted instance gets a new public address (as on AWS): the refresh reads it, the plan changes
    # that output and no resource, the instance is in sync and shows its new address.
    after = run(api, "acme", "pg", "plan")
    assert after["changed"] in (None, []) and after["status"] == "succeeded"
    spec = api.get("/api/clients/acme/instances/pg").json()
    assert spec["drift"] == "compliant" and spec["outputs"]["public_ip"] == started["PublicIpAddress"]


def test_a_tag_added_behind_spawnit_back_is_drift_naming_resource_and_attribute_accepted_then_restored_through_review(deployed, api, emulator):
    [instance] = instances_of(emulator, "acme", "pg")
    ec2 = emulator.client("ec2")
    ec2.create_tags(Resources=[instance["InstanceId"]], Tags=[{"Key": "owner", "Value": "someone"}])
    plan = run(api, "acme", "pg", "plan")
    review = api.get(f"/api/jobs/{plan['id']}/plan").json()["diff"]
    [changed] = [entry for entry in review["drift"] if entry["address"] == "aws_instance.instance"]
    assert {"attribute": "tags.owner", "before": None, "after": "someone"} in changed["attributes"], changed
    assert ["aws_instance", "tags.owner"] in plan["plan"]["causes"]
    # accept the cloud's value: a refresh-only plan, reviewed, applied; the state then holds the tag
    accept = run(api, "acme", "pg", "plan", body={"refresh_only": True})
    assert accept["status"] == "succeeded" and accept["plan"]["refresh_only"] is True, log_text(api, accept["id"])
    assert run(api, "acme", "pg", "apply", body={"plan": accept["id"]})["status"] == "succeeded"
    [stored] = [item for item in state_of(emulator, "acme", "pg")["resources"] if item["type"] == "aws_instance"]
    assert stored["instances"][0]["attributes"]["tags"]["owner"] == "someone"
    # restore the declared state instead: the normal plan removes the tag, reviewed, applied
    restore = run(api, "acme", "pg", "plan")
    [update] = [entry for entry in api.get(f"/api/jobs/{restore['id']}/plan").json()["diff"]["resources"] if entry["address"] == "aws_instance.instance"]
    assert update["action"] == "update" and {"attribute": "tags.owner", "before": "someone", "after": None} in update["attributes"]
    assert run(api, "acme", "pg", "apply", body={"plan": restore["id"]})["status"] == "succeeded"
    tags = {tag["Key"] for tag in ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][0].get("Tags", [])}
    assert "owner" not in tags and "spawnit-instance" in tags


def test_a_terminated_instance_is_drift_and_an_apply_replaces_it(deployed, api, emulator):
    [instance] = instances_of(emulator, "acme", "pg")
    emulator.client("ec2").terminate_instances(InstanceIds=[instance["InstanceId"]])
    drifted_then_applied(api, "aws_instance.instance")
    [replacement] = instances_of(emulator, "acme", "pg")
    assert replacement["InstanceId"] != instance["InstanceId"] and replacement["State"]["Name"] == "running"
    assert run(api, "acme", "pg", "plan")["changes"] is False


def test_cancelling_a_running_apply_stops_the_engine_cleanly_and_the_next_plan_works(api, emulator):
    create(api, "acme", "cancelled")
    with emulator.slow("run_instances", 8) as launching:
        job = api.post("/api/clients/acme/instances/cancelled/apply", json={"auto_approve": True}).json()["job"]
        assert launching.wait(240), "the apply never reached RunInstances"
        assert api.delete(f"/api/jobs/{job}").status_code == 202
        record = ended(api, job, 120)
    text = log_text(api, job)
    assert record["status"] == "cancelled", text
    assert "Interrupt received" in text or "Stopping operation" in text  # the engine itself saw SIGTERM
    assert record["exit_code"] not in (None, -9)  # it exited on its own, not SIGKILLed
    assert emulator.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="clients/acme/cancelled/terraform.tfstate.tflock").get("KeyCount", 0) == 0
    after = run(api, "acme", "cancelled", "plan")
    assert after["status"] == "succeeded" and after["exit_code"] in (0, 2), log_text(api, after["id"])
    assert run(api, "acme", "cancelled", "destroy")["status"] == "succeeded"


def test_kill_9_of_the_worker_during_an_apply_ends_it_interrupted_removes_the_lock_and_the_next_plan_works(api, emulator, platform):
    create(api, "acme", "killed")
    with emulator.slow("run_instances", 6) as launching:
        job = api.post("/api/clients/acme/instances/killed/apply", json={"auto_approve": True}).json()["job"]
        assert launching.wait(240), "the apply never reached RunInstances"
        s3 = emulator.client("s3")
        assert s3.list_objects_v2(Bucket=BUCKET, Prefix="clients/acme/killed/terraform.tfstate.tflock").get("KeyCount", 0) == 1  # held by the engine
        platform.stop("worker", signal.SIGKILL)
        record = ended(api, job, STALE_AFTER * 6)
    assert record["status"] == "interrupted"
    wait_until(lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix="clients/acme/killed/terraform.tfstate.tflock").get("KeyCount", 0) == 0, 60, "the leftover lock removed")
    state = state_of(emulator, "acme", "killed")
    assert state is None or isinstance(state["resources"], list)  # intact: absent or a whole state
    platform.start_worker("worker")
    after = run(api, "acme", "killed", "plan")
    assert after["status"] == "succeeded" and after["exit_code"] in (0, 2), log_text(api, after["id"])


def test_one_definition_for_two_clients_gives_two_independent_states(deployed, api, emulator):
    create(api, "globex", "pg")
    applied = run(api, "globex", "pg", "apply", body={"auto_approve": True})  # plan-and-apply, asked for explicitly
    assert applied["status"] == "succeeded" and applied["auto_approved"] is True and applied["applies_plan"] is None
    text = log_text(api, applied["id"])  # one job: a plan, judged by the gate, then that very plan applied
    assert re.search(r"plan -input=false -no-color -detailed-exitcode -out=tfplan.*policy gate passed.*apply -input=false -no-color tfplan", text, re.S), text
    ours, theirs = state_of(emulator, "acme", "pg"), state_of(emulator, "globex", "pg")
    assert ours["lineage"] != theirs["lineage"]
    ids = lambda state: {instance["attributes"]["id"] for resource in state["resources"] if resource["mode"] == "managed" for instance in resource["instances"]}  # noqa: E731
    assert not ids(ours) & ids(theirs)
    assert run(api, "globex", "pg", "destroy")["status"] == "succeeded"
    assert instances_of(emulator, "globex", "pg") == [] and len(instances_of(emulator, "acme", "pg")) == 1
    assert run(api, "acme", "pg", "plan")["changes"] is False


def test_deleting_the_instance_destroys_its_resources_and_removes_it_and_its_state(deployed, api, emulator):
    response = api.delete("/api/clients/acme/instances/pg")
    assert response.status_code == 202
    assert ended(api, response.json()["job"])["status"] == "succeeded"
    assert instances_of(emulator, "acme", "pg") == []
    assert emulator.client("ec2").describe_security_groups(Filters=[{"Name": "group-name", "Values": ["acme-pg"]}])["SecurityGroups"] == []
    assert emulator.client("ssm").get_parameters_by_path(Path="/spawnit/acme-pg/")["Parameters"] == []
    assert api.get("/api/clients/acme/instances/pg").status_code == 404
    assert state_of(emulator, "acme", "pg") is None
    assert emulator.client("s3").list_objects_v2(Bucket=BUCKET, Prefix="clients/acme/pg/").get("KeyCount", 0) == 0
