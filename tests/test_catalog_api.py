"""A new service added as a file, through the API and through the store, deployed to every target with no
code change; versions pinned per instance; upgrades through a reviewed plan; the minor policy.

Jobs run with the stand-in engine (its command lines recorded); the stacks the worker synthesizes are
read by the real Terraform core (tfcheck: the pinned providers' schemas); the real engine and AWS
provider plan the new service against moto in tests/test_engine_loop.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import wait_job, wait_until
from plansamples import FLOW_PLAN
from spawnit.api import create_app
from spawnit.api.auth import AuthSettings
from spawnit.api.jobs import JobManager
from spawnit.api.store import LocalObjectStore, Store
from spawnit.api.upgrades import UPGRADE_POLICY
from spawnit.shared import user_data_text
from spawnit.proxmox import ProxmoxCluster
from spawnit.services.catalog import Catalog
from spawnit.services.template import synth_source
from standin import stand_in_tofu
from test_templates import MOSQUITTO, mosquitto
from tfcheck.core import prepare, validate

TOKEN_ID, TOKEN_SECRET = "spawnit@pve!platform", "9b1c7a52-5d1e-4a8e-9d59-0f6f3c1e2a47"
# A plan that changes the broker's container and image only: what an automatic upgrade may apply alone.
CONTAINER_PLAN = {**FLOW_PLAN, "resource_changes": [change for change in FLOW_PLAN["resource_changes"] if change["type"] != "docker_volume"]}
TARGET_PARAMETERS = {
    "docker": {},
    "aws": {"allowed_cidrs": ["203.0.113.0/24"]},
    "proxmox": {"proxmox_node": "pve1", "proxmox_endpoint": "https://pve.example.com:8006/"},
}


@pytest.fixture
def platform(tmp_path, synth_worker, fakepve, fakepve_url, fakepve_cafile):
    """The API (auth off) over a local store, jobs run here by the stand-in engine, a fake Proxmox cluster."""
    fakepve.apitokens[TOKEN_ID] = TOKEN_SECRET
    fakepve.storages["local"]["content"] = "iso,vztmpl,backup,snippets"
    cluster = ProxmoxCluster(fakepve_url + "/", TOKEN_ID, TOKEN_SECRET, verify=fakepve_cafile)
    environ, calls = stand_in_tofu(tmp_path)
    environ |= {"TOFU_EXIT_CODES": json.dumps({"plan": 2}), "TOFU_SHOW_JSON": json.dumps(CONTAINER_PLAN)}
    store = Store(LocalObjectStore(tmp_path / "store"))
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work", environ=environ, catalog=Catalog(store.objects, ttl=0))
    with TestClient(create_app(store=store, jobs=jobs, auth=AuthSettings("off"), proxmox=lambda: cluster)) as api:
        yield api, store, jobs, calls


def publish(api, text: str, service: str = "mosquitto"):
    return api.put(f"/api/catalog/{service}", content=text.encode(), headers={"Content-Type": "application/yaml"})


def create(api, instance: str, target: str = "docker", **body) -> dict:
    response = api.post("/api/clients/acme/instances", json={"service": "mosquitto", "target": target, "instance": instance, "parameters": TARGET_PARAMETERS[target], **body})
    assert response.status_code == 201, response.text
    return response.json()["spec"]


def test_a_service_published_through_the_api_is_in_the_catalog_with_its_form_schema_and_the_publication_is_audited(platform):
    api, store, _, _ = platform
    response = publish(api, MOSQUITTO)
    assert response.status_code == 201, response.text
    assert response.json()["version"] == "1.0.0" and response.json()["source"] == "templates/mosquitto/1.0.0.yaml"
    [service] = [item for item in api.get("/api/catalog").json()["services"] if item["name"] == "mosquitto"]
    assert (service["version"], service["category"], service["category_label"], service["maintainer"]) == ("1.0.0", "messaging", "Messaging", "messaging team <mqtt@example.com>")
    assert service["versions"] == [{"version": "1.0.0", "sha256": response.json()["sha256"], "deprecated": None}]
    assert service["parameters"]["properties"]["port"]["default"] == 1883
    assert api.get("/api/catalog/mosquitto").json() == service["parameters"]
    [record] = [json.loads(store.objects.get(key)) for key in store.objects.list("audit/") if b"catalog.publish" in store.objects.get(key)]
    assert record["outcome"] == "succeeded" and record["details"] == {"service": "mosquitto", "version": "1.0.0", "template_sha256": response.json()["sha256"]}


def test_a_broken_template_is_refused_whole_with_a_422_naming_the_field_and_nothing_is_stored(platform):
    api, store, _, _ = platform
    refused = publish(api, mosquitto(**{"image: eclipse-mosquitto:2.0": "image: Eclipse Mosquitto"}))
    assert refused.status_code == 422
    assert refused.json()["error"] == ("mosquitto.yaml: containers.0.image = 'Eclipse Mosquitto' is not allowed; "
                                       "allowed: an image reference, [registry/]name[:tag][@sha256:digest], lowercase name")
    assert publish(api, MOSQUITTO, service="mqtt").json()["error"] == "mqtt.yaml: name = 'mosquitto' is not the service published here; allowed: 'mqtt'"
    assert store.objects.list("templates/") == [] and store.objects.list("catalog/") == []
    assert api.put("/api/catalog/mosquitto", json={"format": "spawnit.dev/service-template/v1"}).status_code == 422  # JSON: the same checks


def test_a_template_dropped_into_the_store_is_seen_by_every_replica_without_a_restart_and_a_broken_one_is_reported(platform, tmp_path, synth_worker):
    api, store, _, _ = platform
    other = create_app(store=store, jobs=JobManager(store, synth_worker, workdir=tmp_path / "work2", catalog=Catalog(store.objects, ttl=0.5)), auth=AuthSettings("off"))
    with TestClient(other) as replica:
        assert "mosquitto" not in [item["name"] for item in replica.get("/api/catalog").json()["services"]]
        store.objects.put("templates/mosquitto.yaml", MOSQUITTO.encode())
        store.objects.put("templates/mqtt-broken.yaml", mosquitto(**{"name: mosquitto": "name: mqtt", '"{{ port }}"': '"{{ prot }}"'}).encode())
        wait_until(lambda: "mosquitto" in [item["name"] for item in replica.get("/api/catalog").json()["services"]], 30, "the replica seeing the dropped template")
        document = api.get("/api/catalog").json()
        assert document["broken"] == [{"source": "templates/mqtt-broken.yaml", "problems": [
            "containers.0.ports.0.published = '{{ prot }}' uses 'prot', which is not a parameter; did you mean 'port'? allowed: port, memory_mb and the shared ones"]}]
        assert len(document["services"]) == 11  # the ten built-in ones and the new one: the broken file breaks nothing


@pytest.fixture(scope="module")
def core():
    return prepare()


@pytest.mark.parametrize("target", ["docker", "aws", "proxmox"])
def test_the_new_service_deploys_to_each_target_with_no_code_change(platform, core, synth_worker, tmp_path, target):
    api, store, jobs, calls = platform
    assert publish(api, MOSQUITTO).status_code == 201
    spec = create(api, f"mqtt-{target}", target)
    assert (spec["service_version"], len(spec["service_sha256"])) == ("1.0.0", 64)
    plan = wait_job(api, api.post(f"/api/clients/acme/instances/mqtt-{target}/plan").json()["job"])
    assert plan["status"] == "succeeded" and plan["plan"]["inputs"]["service_version"] == "1.0.0", plan
    [planned] = [call for call in calls() if call.get("argv", [None])[0] == "plan"]
    assert planned["argv"][:3] == ["plan", "-input=false", "-no-color"]
    # The stack the worker makes from the stored template, read by the real Terraform core with the providers' schemas.
    service = jobs.service_of(store.get_spec("acme", f"mqtt-{target}"))
    folder = synth_worker.synth(**synth_source(service), parameters={**spec["parameters"], "target": target}, client="acme", instance=f"mqtt-{target}", outdir=str(tmp_path / "synth"))
    diagnostics = [str(found) for found in validate(core, folder) if found.severity == "error"]
    assert diagnostics == []
    stack = json.loads((folder / "cdk.tf.json").read_text())
    text = json.dumps(stack)
    if target == "aws":  # the containers are started by the instance's boot script, in its user data
        [instance] = stack["resource"]["aws_instance"].values()
        text = user_data_text(instance["user_data_base64"])
    assert "eclipse-mosquitto:2.0" in text and "1883" in text
    if target == "docker":
        [container] = stack["resource"]["docker_container"].values()
        assert container["memory"] == 128 and container["ports"][0]["external"] == 1883
    elif target == "proxmox":
        [vm] = stack["resource"]["proxmox_virtual_environment_vm"].values()
        assert vm["memory"][0]["dedicated"] == 2048  # the template's own hint: at least 2 GB for this guest
    else:
        rules = [rule for rule in stack["resource"].get("aws_vpc_security_group_ingress_rule", {}).values()]
        assert [(rule["from_port"], rule["cidr_ipv4"]) for rule in rules] == [(1883, "203.0.113.0/24")]


def test_an_instance_stays_on_its_version_after_a_newer_one_is_published_and_says_an_upgrade_is_available(platform):
    api, store, jobs, calls = platform
    publish(api, MOSQUITTO)
    create(api, "broker")
    assert publish(api, mosquitto("1.1.0", **{"default: 128": "default: 256", "eclipse-mosquitto:2.0": "eclipse-mosquitto:2.0.20"})).status_code == 201
    view = api.get("/api/clients/acme/instances/broker").json()
    assert (view["service_version"], view["upgrades"], view["upgrade_policy"]) == ("1.0.0", ["1.1.0"], "pinned")
    assert create(api, "fresh")["service_version"] == "1.1.0"  # a new instance gets the current version
    assert create(api, "old", service_version="1.0.0")["service_version"] == "1.0.0"  # or the one asked
    # The pinned instance is synthesized from its own version: its plan knows nothing of 1.1.0.
    plan = wait_job(api, api.post("/api/clients/acme/instances/broker/plan").json()["job"])
    assert plan["plan"]["inputs"]["service_version"] == "1.0.0" and plan["plan"]["inputs"]["parameters"]["memory_mb"] == 128
    assert api.get("/api/catalog/mosquitto?version=1.0.0").json()["properties"]["memory_mb"]["default"] == 128
    assert api.get("/api/catalog/mosquitto").json()["properties"]["memory_mb"]["default"] == 256


def test_an_upgrade_is_a_plan_for_review_with_its_diff_and_moves_the_instance_only_when_that_plan_is_applied(platform):
    api, store, jobs, calls = platform
    publish(api, MOSQUITTO)
    create(api, "broker")
    publish(api, mosquitto("1.1.0", **{"eclipse-mosquitto:2.0": "eclipse-mosquitto:2.0.20"}))
    started = api.post("/api/clients/acme/instances/broker/upgrade", json={"version": "1.1.0"})
    assert started.status_code == 202 and (started.json()["action"], started.json()["version"], started.json()["from"]) == ("plan", "1.1.0", "1.0.0")
    plan = wait_job(api, started.json()["job"])
    assert plan["status"] == "succeeded" and plan["upgrade"]["version"] == "1.1.0" and plan["plan"]["inputs"]["service_version"] == "1.1.0"
    review = api.get(f"/api/jobs/{plan['id']}/plan").json()
    assert review["diff"]["summary"] and {entry["address"] for entry in review["diff"]["resources"]} == {"docker_container.redis", "docker_image.redis"}
    assert store.get_spec("acme", "broker")["service_version"] == "1.0.0"  # reviewed, not applied: still on 1.0.0
    drift = wait_job(api, api.post("/api/clients/acme/instances/broker/plan").json()["job"])  # another plan meanwhile is made from 1.0.0
    assert drift["plan"]["inputs"]["service_version"] == "1.0.0"
    applied = wait_job(api, api.post("/api/clients/acme/instances/broker/apply", json={"plan": plan["id"]}).json()["job"])
    assert applied["status"] == "succeeded" and applied["upgrade"]["version"] == "1.1.0", applied
    spec = store.get_spec("acme", "broker")
    assert (spec["service_version"], spec["service_sha256"]) == ("1.1.0", plan["upgrade"]["sha256"])
    assert api.get("/api/clients/acme/instances/broker").json()["upgrades"] == []
    audit = [json.loads(store.objects.get(key)) for key in store.objects.list("audit/")]
    assert [record["details"] for record in audit if record["action"] == "instance.upgrade"] == [{"version": "1.1.0", "from_version": "1.0.0"}]


def test_an_upgrade_plan_goes_stale_when_the_instance_changes_before_it_is_applied(platform):
    api, store, jobs, calls = platform
    publish(api, MOSQUITTO)
    create(api, "broker")
    publish(api, mosquitto("1.1.0"))
    plan = wait_job(api, api.post("/api/clients/acme/instances/broker/upgrade", json={"version": "1.1.0"}).json()["job"])
    assert api.patch("/api/clients/acme/instances/broker", json={"parameters": {"port": 1884}}).status_code == 200
    refused = api.post("/api/clients/acme/instances/broker/apply", json={"plan": plan["id"]})
    assert refused.status_code == 409 and "parameters changed since the upgrade was planned (port)" in refused.json()["error"]
    assert store.get_spec("acme", "broker")["service_version"] == "1.0.0"


def test_a_removed_parameter_is_refused_by_name_a_renamed_one_moves_and_a_dropped_one_is_let_go(platform):
    api, store, jobs, calls = platform
    publish(api, MOSQUITTO)
    create(api, "broker", parameters={"memory_mb": 300})
    without_memory = mosquitto("2.0.0", replace={"  memory_mb:\n    type: integer\n    minimum: 32\n    maximum: 4096\n    default: 128\n    description: Memory limit of the broker.\n": "",
                                                 '    memory_mb: "{{ memory_mb }}"\n': ""})
    publish(api, without_memory)
    refused = api.post("/api/clients/acme/instances/broker/upgrade", json={"version": "2.0.0"})
    assert refused.status_code == 422
    assert refused.json()["fields"] == {"memory_mb": "memory_mb = 300 is a parameter of version 1.0.0 that version 2.0.0 does not have; "
                                                     "allowed: a version whose template renames it (upgrade.renamed) or lets it go (upgrade.dropped)"}
    renamed = mosquitto("2.1.0", replace={"  memory_mb:\n": "  broker_memory_mb:\n", '"{{ memory_mb }}"': '"{{ broker_memory_mb }}"', "targets:\n": "upgrade:\n  renamed: {memory_mb: broker_memory_mb}\ntargets:\n"})
    assert publish(api, renamed).status_code == 201
    plan = wait_job(api, api.post("/api/clients/acme/instances/broker/upgrade", json={"version": "2.1.0"}).json()["job"])
    assert plan["upgrade"]["parameters"]["broker_memory_mb"] == 300 and "memory_mb" not in plan["upgrade"]["parameters"]
    dropped = without_memory.replace("version: 2.0.0", "version: 2.2.0").replace("targets:\n", "upgrade:\n  dropped: [memory_mb]\ntargets:\n")
    assert publish(api, dropped).status_code == 201
    plan = wait_job(api, api.post("/api/clients/acme/instances/broker/upgrade", json={"version": "2.2.0"}).json()["job"])
    assert plan["status"] == "succeeded" and "memory_mb" not in plan["upgrade"]["parameters"]
    assert api.post("/api/clients/acme/instances/broker/upgrade", json={"version": "1.0.0"}).json()["error"].startswith("version: '1.0.0' is the instance's version already")


def deployed(api, store, instance: str) -> None:
    applied = wait_job(api, api.post(f"/api/clients/acme/instances/{instance}/apply", json={"auto_approve": True}).json()["job"])
    assert applied["status"] == "succeeded", applied
    wait_until(lambda: store.get_spec("acme", instance).get("deployed_at"), 30, "the instance deployed")


def test_a_pinned_instance_never_moves_and_the_minor_policy_applies_a_safe_minor_upgrade_on_its_own(platform):
    api, store, jobs, calls = platform
    publish(api, MOSQUITTO)
    create(api, "pinned")
    create(api, "follows", upgrade_policy="minor")
    create(api, "major", upgrade_policy="minor")
    for instance in ("pinned", "follows", "major"):
        deployed(api, store, instance)
    publish(api, mosquitto("1.1.0"))
    publish(api, mosquitto("2.0.0"))
    upgrades = api.app.state.upgrades
    started = upgrades.sweep()
    assert sorted(started) == ["acme/follows", "acme/major"]  # each to its newest 1.x: never across a major version
    wait_until(lambda: (store.get_spec("acme", "follows").get("auto_upgrade") or {}).get("status") == "applied", 60, "the automatic upgrade applied")
    follows = store.get_spec("acme", "follows")
    assert follows["service_version"] == "1.1.0" and follows["auto_upgrade"]["version"] == "1.1.0"
    [apply] = [job for job in (jobs.get(job_id) for job_id in follows["jobs"]) if job["action"] == "apply" and job["requested_by"] == UPGRADE_POLICY]
    assert apply["applies_plan"] and apply["upgrade"]["auto"] is True
    assert store.get_spec("acme", "pinned")["service_version"] == "1.0.0"
    upgrades.sweep()
    assert store.get_spec("acme", "pinned")["service_version"] == "1.0.0" and not store.get_spec("acme", "pinned").get("auto_upgrade")
    assert upgrades.sweep() == []  # nothing newer within 1.x now: no new plan


def test_the_minor_policy_holds_an_upgrade_that_changes_more_than_containers_or_that_its_gate_blocks(platform, risky_plan):
    api, store, jobs, calls = platform
    publish(api, MOSQUITTO)
    create(api, "data", upgrade_policy="minor")
    create(api, "risky", upgrade_policy="minor")
    deployed(api, store, "data")
    deployed(api, store, "risky")
    publish(api, mosquitto("1.1.0"))
    jobs.environ["TOFU_SHOW_JSON"] = json.dumps(FLOW_PLAN)  # deletes a volume: data
    api.app.state.upgrades.sweep()
    wait_until(lambda: (store.get_spec("acme", "data").get("auto_upgrade") or {}).get("status") == "held", 60, "the upgrade held")
    wait_until(lambda: (store.get_spec("acme", "risky").get("auto_upgrade") or {}).get("status") == "held", 60, "the upgrade held")
    data = store.get_spec("acme", "data")
    assert data["service_version"] == "1.0.0"
    assert data["auto_upgrade"]["reasons"] == ["it would delete docker_volume.old, which is not a container or an image"]
    spec = store.get_spec("acme", "risky")
    plan = jobs.get(spec["auto_upgrade"]["job"])
    assert plan["upgrade"]["version"] == "1.1.0"
    # The same policy with a plan its gate blocks (a real engine's plan with Checkov findings).
    store.put_spec("acme", "risky", {**spec, "auto_upgrade": None})
    jobs.environ["TOFU_SHOW_JSON"] = json.dumps(risky_plan)
    api.app.state.upgrades.sweep()
    wait_until(lambda: (store.get_spec("acme", "risky").get("auto_upgrade") or {}).get("status") == "held", 60, "the blocked upgrade held")
    risky = store.get_spec("acme", "risky")
    assert risky["service_version"] == "1.0.0"
    assert any(reason.startswith("the policy gate blocks it:") for reason in risky["auto_upgrade"]["reasons"]), risky["auto_upgrade"]
    assert not [job for job in (jobs.get(job_id) for job_id in risky["jobs"]) if job["action"] == "apply" and job["requested_by"] == UPGRADE_POLICY]


def test_the_command_line_adds_a_template_to_the_store_the_api_serves(tmp_path, monkeypatch, capsys):
    from spawnit.cli import main

    template = tmp_path / "mosquitto.yaml"
    template.write_text(MOSQUITTO)
    monkeypatch.setenv("SPAWNIT_DATA_DIR", str(tmp_path / "data"))
    assert main(["catalog", "check", str(template)]) == 0
    assert main(["catalog", "add", str(template)]) == 0
    assert "published mosquitto 1.0.0 as templates/mosquitto/1.0.0.yaml" in capsys.readouterr().out
    assert main(["catalog", "add", str(template)]) == 2
    assert "version = '1.0.0' of 'mosquitto' is published already" in capsys.readouterr().err
    assert Catalog(LocalObjectStore(tmp_path / "data")).get("mosquitto").version == "1.0.0"
    broken = tmp_path / "broken.yaml"
    broken.write_text(mosquitto(**{"default: 1883": "default: 80"}))
    assert main(["catalog", "check", str(broken)]) == 2
    assert "broken.yaml: parameters.port.default = 80 breaks the parameter's own rules" in capsys.readouterr().err
    (tmp_path / "data" / "templates" / "broken.yaml").write_text(broken.read_text())
    assert main(["catalog"]) == 0
    captured = capsys.readouterr()
    assert "mosquitto    1.0.0     messaging" in captured.out and "templates/broken.yaml is left out: parameters.port.default = 80" in captured.err
    assert main(["catalog", "schema"]) == 0 and json.loads(capsys.readouterr().out)["$id"].endswith("service-template/v1.json")
    assert main(["catalog", "versions", "mosquitto"]) == 0 and capsys.readouterr().out.startswith("1.0.0 ")
    assert main(["catalog", "deprecate", "mosquitto", "1.0.0", "retained messages are lost: use 1.1.0"]) == 0
    assert "mosquitto 1.0.0: deprecated: retained messages are lost" in capsys.readouterr().out
    assert main(["catalog", "versions", "mosquitto"]) == 0 and capsys.readouterr().out.rstrip().endswith("deprecated: retained messages are lost: use 1.1.0")
    assert main(["catalog", "deprecate", "mosquitto", "9.9.9", "a version that is not there"]) == 2
    assert "service_version: '9.9.9' is not a version of 'mosquitto'; allowed: 1.0.0" in capsys.readouterr().err
    assert main(["catalog", "frobnicate"]) == 2
    # `synth --service` and `--set` check a stored template's parameters as the API does, before anything loads or is written
    assert main(["synth", "--service", "mosquitto", "--set", "port=80", "--outdir", str(tmp_path / "out")]) == 2
    assert "port = 80 is not allowed: input should be greater than or equal to 1024" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_readme_example_template_is_valid_and_deploys(tmp_path):
    from spawnit.services.template import load_template

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    example = readme.split("<!-- template-example -->\n```yaml\n", 1)[1].split("```", 1)[0]
    loaded = load_template(example.encode(), "README.md")
    service = loaded.service
    for target, values in TARGET_PARAMETERS.items():
        parameters = service.checked({**values, "target": target})
        assert service(parameters).containers()


def test_a_published_version_is_deprecated_with_a_note_new_instances_and_upgrades_skip_it_and_its_instances_keep_working(platform):
    api, store, jobs, calls = platform
    publish(api, MOSQUITTO)
    create(api, "broker")
    publish(api, mosquitto("1.1.0"))
    short = api.put("/api/catalog/mosquitto/versions/1.1.0/deprecation", json={"note": "bad"})
    assert short.status_code == 422 and "note" in short.json()["fields"]
    done = api.put("/api/catalog/mosquitto/versions/1.1.0/deprecation", json={"note": "loses retained messages: stay on 1.0.0"})
    assert done.status_code == 200 and done.json() == {"service": "mosquitto", "version": "1.1.0", "deprecated": "loses retained messages: stay on 1.0.0"}
    [service] = [item for item in api.get("/api/catalog").json()["services"] if item["name"] == "mosquitto"]
    assert service["version"] == "1.0.0" and service["versions"][1]["deprecated"] == "loses retained messages: stay on 1.0.0"
    assert api.get("/api/clients/acme/instances/broker").json()["upgrades"] == []  # not offered
    assert create(api, "fresh")["service_version"] == "1.0.0"
    assert json.loads(store.objects.get("catalog.json"))["services"]["mosquitto"]["1.1.0"]["deprecated"].startswith("loses retained")
    pinned = create(api, "pinned", service_version="1.1.0")  # still there for whoever asks for it by name
    assert api.get("/api/clients/acme/instances/pinned").json()["service_deprecated"] == "loses retained messages: stay on 1.0.0"
    plan = wait_job(api, api.post("/api/clients/acme/instances/pinned/plan").json()["job"])
    assert pinned["service_version"] == "1.1.0" and plan["status"] == "succeeded"
    assert api.put("/api/catalog/mosquitto/versions/1.1.0/deprecation", json={"note": None}).json()["deprecated"] is None
    assert api.get("/api/clients/acme/instances/broker").json()["upgrades"] == ["1.1.0"]
    audit = [json.loads(store.objects.get(key)) for key in store.objects.list("audit/")]
    assert [record["details"] for record in audit if record["action"] == "catalog.deprecate" and record["outcome"] == "succeeded"] == [{"service": "mosquitto", "version": "1.1.0"}] * 2


def test_an_instance_made_before_versions_stays_on_the_baseline_and_upgrades_from_it(platform):
    api, store, jobs, calls = platform
    publish(api, MOSQUITTO)
    create(api, "legacy")
    spec = store.get_spec("acme", "legacy")
    for field in ("service_version", "service_sha256"):  # as an instance created before the catalog had versions
        del spec[field]
    store.put_spec("acme", "legacy", spec)
    publish(api, mosquitto("1.1.0"))
    assert jobs.service_of(store.get_spec("acme", "legacy")).version == "1.0.0"  # never silently the newest
    assert api.get("/api/clients/acme/instances/legacy").json()["upgrades"] == ["1.1.0"]
    plan = wait_job(api, api.post("/api/clients/acme/instances/legacy/upgrade", json={"version": "1.1.0"}).json()["job"])
    assert plan["status"] == "succeeded" and plan["upgrade"]["from"]["version"] == "1.0.0"
    applied = api.post("/api/clients/acme/instances/legacy/apply", json={"plan": plan["id"]})
    assert applied.status_code == 202, applied.text  # not refused as "the version changed since the upgrade was planned"
    assert wait_job(api, applied.json()["job"])["status"] == "succeeded"
    assert store.get_spec("acme", "legacy")["service_version"] == "1.1.0"
