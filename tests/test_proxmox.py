"""The proxmox target: every service on a VM or an LXC container, its scripts run for real, and the
cluster read through proxmoxer from a fake Proxmox VE API (fakepve, started by each test on 127.0.0.1)."""

from __future__ import annotations

import base64
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from hosts import run_isolated
from conftest import tool

from spawnit.api import create_app
from spawnit.api.auth import AuthSettings
from spawnit.api.jobs import JobManager
from spawnit.api.store import LocalObjectStore, Store
from spawnit.proxmox import GuestRequest, ProxmoxCluster, ProxmoxError
from spawnit.services import all_services, get_service

SERVICES = list(all_services())
TOKEN_ID, TOKEN_SECRET = "spawnit@pve!platform", "9b1c7a52-5d1e-4a8e-9d59-0f6f3c1e2a47"


def proxmox_stack(all_stacks, name: str):
    return all_stacks[f"catalog-{name}-proxmox"]


def user_data(stack) -> dict:
    (snippet,) = stack.resources("proxmox_virtual_environment_file").values()
    return yaml.safe_load(snippet["source_raw"][0]["data"])


def rendered(text: str, secrets: dict[str, str]) -> str:
    """What Terraform makes of a snippet's text: each ``${base64encode(var.NAME)}`` evaluated, ``$${`` and ``%%{`` unescaped."""
    for name, value in secrets.items():
        text = text.replace(f"${{base64encode(var.{name})}}", base64.b64encode(value.encode()).decode())
    assert "${" not in text.replace("$${", ""), "a Terraform reference is left unevaluated"
    return text.replace("$${", "${").replace("%%{", "%{")


# Every service, on a VM ----------------------------------------------------------------------


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_runs_on_a_vm_cloned_from_the_template_with_its_sizes(all_stacks, name):
    stack = proxmox_stack(all_stacks, name)
    (vm,) = stack.resources("proxmox_virtual_environment_vm").values()
    service = get_service(name)
    parameters = service.parse({**service.example, "target": "proxmox"})
    containers = service(parameters).containers()
    assert vm["clone"] == [{"vm_id": 9000, "full": True, "datastore_id": "local-lvm"}]
    assert vm["cpu"][0]["cores"] == 2 and vm["memory"][0]["dedicated"] == parameters.proxmox_memory(containers)
    assert vm["disk"] == [{"interface": "scsi0", "size": 20, "datastore_id": "local-lvm", "discard": "on", "iothread": True}]
    assert vm["agent"][0]["enabled"] is True and vm["initialization"][0]["user_data_file_id"] == "${proxmox_virtual_environment_file.user-data.id}"
    script = next(entry["content"] for entry in user_data(stack)["write_files"] if entry["path"].endswith("/spawnit-service.sh"))
    for container in containers:
        image = container.image if isinstance(container.image, str) else container.image.tag
        assert f"--name catalog-{name}-proxmox-{container.name} " in script and image in script
    assert stack.document["output"]["address"]["value"].startswith("${try([for a in flatten(proxmox_virtual_environment_vm.vm.ipv4_addresses)")


def test_the_guest_memory_covers_the_containers_limits_plus_the_system(all_stacks):
    (vm,) = proxmox_stack(all_stacks, "jenkins").resources("proxmox_virtual_environment_vm").values()
    assert vm["memory"][0]["dedicated"] == 2560  # Jenkins' 2048 MB limit + 512 MB, in 512 MB steps
    (vm,) = proxmox_stack(all_stacks, "nginx").resources("proxmox_virtual_environment_vm").values()
    assert vm["memory"][0]["dedicated"] == 1024  # the floor


@pytest.mark.parametrize("name", SERVICES)
def test_the_vm_user_data_passes_cloud_init_schema(all_stacks, name, tmp_path):
    (snippet,) = proxmox_stack(all_stacks, name).resources("proxmox_virtual_environment_file").values()
    service = get_service(name)
    path = tmp_path / "user-data.yaml"
    path.write_text(rendered(snippet["source_raw"][0]["data"], {secret: "s3cret" for secret in service.secrets}))
    result = subprocess.run([tool("cloud-init"), "schema", "--config-file", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    document = yaml.safe_load(path.read_text())
    assert {"qemu-guest-agent", "docker.io"} <= set(document["packages"])
    assert ["systemctl", "enable", "--now", "qemu-guest-agent"] in document["runcmd"]  # the provider reads the address from the agent


def test_secrets_are_sensitive_variables_written_by_cloud_init_never_values(all_stacks):
    stack = proxmox_stack(all_stacks, "wordpress")
    assert {name: variable["sensitive"] for name, variable in stack.document["variable"].items()} == {"db_password": True, "db_root_password": True}
    secrets = {entry["path"]: entry for entry in user_data(stack)["write_files"] if "/secrets/" in entry["path"]}
    assert secrets == {
        f"/opt/spawnit/catalog-wordpress-proxmox/secrets/{name}": {
            "path": f"/opt/spawnit/catalog-wordpress-proxmox/secrets/{name}",
            "content": f"${{base64encode(var.{name})}}",
            "encoding": "b64",
            "permissions": "0600",
            "owner": "root:root",
        }
        for name in ("db_password", "db_root_password")
    }


def test_a_password_with_quotes_newlines_and_dollars_survives_the_yaml(all_stacks, tmp_path):
    (snippet,) = proxmox_stack(all_stacks, "postgresql").resources("proxmox_virtual_environment_file").values()
    password = "it's \"a\"\n${x} $(rm -rf /) #1"
    document = yaml.safe_load(rendered(snippet["source_raw"][0]["data"], {"password": password}))
    (entry,) = [entry for entry in document["write_files"] if entry["path"].endswith("/secrets/password")]
    assert base64.b64decode(entry["content"]).decode() == password


def test_the_vm_boot_script_runs_the_containers_with_the_secret_cloud_init_wrote(all_stacks, tmp_path):
    (snippet,) = proxmox_stack(all_stacks, "postgresql").resources("proxmox_virtual_environment_file").values()
    document = yaml.safe_load(rendered(snippet["source_raw"][0]["data"], {"password": "p@ss w0rd"}))
    out, tools = tmp_path / "out", tmp_path / "tools.log"
    out.mkdir()
    lay_out = [  # cloud-init's write_files, then its per-boot stage
        f"mkdir -p {Path(entry['path']).parent} && printf %s {_quoted(entry)} | base64 -d >{entry['path']} && chmod {entry['permissions']} {entry['path']}"
        for entry in document["write_files"]
    ]
    script = next(entry["path"] for entry in document["write_files"] if entry["path"].endswith("spawnit-service.sh"))
    command = " && ".join([*lay_out, f"{script}", f"cp -a /opt/spawnit /var/log/spawnit-service.log {out}/"])
    result = run_isolated(["bash", "-c", command], env=_guest_env(tmp_path, tools), private=("/var/log", "/opt", "/var/lib"))
    assert result.returncode == 0, result.stderr + _read(out / "spawnit-service.log")
    env_file = out / "spawnit" / "catalog-postgresql-proxmox" / "postgres.env"
    assert "POSTGRES_PASSWORD=p@ss w0rd" in env_file.read_text().splitlines() and env_file.stat().st_mode & 0o777 == 0o600
    calls = tools.read_text()
    assert "docker network create catalog-postgresql-proxmox" in calls
    assert "docker run -d --name catalog-postgresql-proxmox-postgres" in calls and "postgres:16-alpine" in calls


# The same on an LXC container ----------------------------------------------------------------


def test_an_lxc_instance_is_an_unprivileged_container_with_nesting_and_a_hook_script(all_stacks):
    stack = all_stacks["acme-pg-lxc"]
    (container,) = stack.resources("proxmox_virtual_environment_container").values()
    assert container["unprivileged"] is True and container["features"] == [{"nesting": True, "keyctl": True}]
    assert container["network_interface"] == [{"name": "eth0", "bridge": "vmbr0", "vlan_id": 30}]
    assert container["operating_system"][0]["template_file_id"] == "local:vztmpl/debian-12-standard_12.12-1_amd64.tar.zst"
    assert container["hook_script_file_id"] == "${proxmox_virtual_environment_file.hook-script.id}"
    (hook,) = stack.resources("proxmox_virtual_environment_file").values()
    assert (hook["file_mode"], hook["content_type"], hook["node_name"]) == ("0700", "snippets", "pve1")
    assert "proxmox_virtual_environment_vm" not in stack.document["resource"]


def test_the_lxc_hook_sets_the_service_up_inside_the_container_after_start(all_stacks, tmp_path):
    (hook,) = all_stacks["acme-pg-lxc"].resources("proxmox_virtual_environment_file").values()
    path = tmp_path / "hook.sh"
    path.write_text(rendered(hook["source_raw"][0]["data"], {"password": "hunter2'\"$"}))
    out, tools = tmp_path / "out", tmp_path / "tools.log"
    out.mkdir()
    # The hook returns at once (the start task must not wait for Docker): wait for its background setup to run the container.
    wait = f'for _ in $(seq 600); do grep -q "^docker run" {tools} 2>/dev/null && break; sleep 0.1; done'
    command = f"bash {path} 101 post-start && {wait} && cp -a /opt/spawnit /usr/local/sbin/spawnit-service.sh /var/log/. {out}/"
    result = run_isolated(["bash", "-c", command], env=_guest_env(tmp_path, tools), private=("/var/log", "/opt", "/usr/local/sbin"))
    assert result.returncode == 0, result.stderr
    calls = tools.read_text()
    assert calls.startswith("pct exec 101 -- true\npct exec 101 -- bash -s\n")
    env_file = out / "spawnit" / "acme-pg-lxc" / "postgres.env"
    assert "POSTGRES_PASSWORD=hunter2'\"$" in env_file.read_text().splitlines() and env_file.stat().st_mode & 0o777 == 0o600
    assert (out / "spawnit-service.sh").stat().st_mode & 0o777 == 0o700
    assert re.search(r"^docker run -d --name acme-pg-lxc-postgres .* postgres:16-alpine$", calls, re.M)
    assert "container 101 started: setting up the service" in (out / "spawnit-acme-pg-lxc-hook.log").read_text()


def test_the_lxc_hook_does_nothing_in_other_phases(all_stacks, tmp_path):
    (hook,) = all_stacks["acme-pg-lxc"].resources("proxmox_virtual_environment_file").values()
    path = tmp_path / "hook.sh"
    path.write_text(rendered(hook["source_raw"][0]["data"], {"password": "x"}))
    tools = tmp_path / "tools.log"
    for phase in ("pre-start", "pre-stop", "post-stop"):
        result = run_isolated(["bash", str(path), "101", phase], env=_guest_env(tmp_path, tools), private=("/var/log", "/opt"))
        assert result.returncode == 0, result.stderr
    assert not tools.exists()


def _guest_env(tmp_path: Path, tools: Path) -> dict[str, str]:
    """PATH with stand-ins for what a guest and a node run: docker (nothing exists yet), systemctl, apt-get,
    and pct, whose ``exec VMID -- CMD`` runs CMD here, in the test's mount namespace standing for the container."""
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    stand_ins = {
        "docker": f'echo "docker $*" >>{tools}\ncase "$1 $2" in "network inspect"|"container inspect") exit 1;; esac\nexit 0',
        "systemctl": f'echo "systemctl $*" >>{tools}',
        "apt-get": f'echo "apt-get $*" >>{tools}',
        "pct": f'echo "pct $*" >>{tools}\n[ "$1" = exec ] || exit 0\nshift 3\nexec "$@"',
    }
    for name, body in stand_ins.items():
        (folder / name).write_text(f"#!/bin/bash\n{body}\n")
        (folder / name).chmod(0o755)
    return {"PATH": f"{folder}:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def _quoted(entry: dict) -> str:
    content = entry["content"] if entry.get("encoding") == "b64" else base64.b64encode(entry["content"].encode()).decode()
    return f"'{content}'"


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


# Parameters and limits -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"proxmox_cores": 9}, "proxmox_cores = 9 is not allowed: input should be less than or equal to 8"),
        ({"proxmox_cores": 0}, "proxmox_cores = 0 is not allowed: input should be greater than or equal to 1"),
        ({"proxmox_memory_mb": 32768}, "proxmox_memory_mb = 32768 is not allowed: input should be less than or equal to 16384"),
        ({"proxmox_memory_mb": 256}, "proxmox_memory_mb = 256 is not allowed: input should be greater than or equal to 512"),
        ({"proxmox_disk_gb": 600}, "proxmox_disk_gb = 600 is not allowed: input should be less than or equal to 500"),
        ({"proxmox_disk_gb": 4}, "proxmox_disk_gb = 4 is not allowed: input should be greater than or equal to 8"),
        ({"proxmox_kind": "kvm"}, "proxmox_kind = 'kvm' is not allowed; allowed: 'vm' or 'lxc'"),
        ({"proxmox_vlan": 4095}, "proxmox_vlan = 4095 is not allowed: input should be less than or equal to 4094"),
        ({"proxmox_endpoint": "http://pve:8006"}, "proxmox_endpoint = 'http://pve:8006' is not allowed; allowed: values matching"),
        ({"proxmox_lxc_template": "debian.tar"}, "proxmox_lxc_template = 'debian.tar' is not allowed; allowed: values matching"),
    ],
)
def test_sizes_and_settings_outside_the_limits_are_refused_naming_field_value_and_limit(values, message):
    from spawnit.services import ParameterError

    with pytest.raises(ParameterError) as error:
        get_service("redis").checked({"target": "proxmox", **values})
    assert message in str(error.value)


def test_a_guest_smaller_than_its_containers_limits_is_refused():
    from spawnit.services import ParameterError

    with pytest.raises(ParameterError, match=r"proxmox_memory_mb = 2048 is too small: the containers' memory limits \(2048 MB\) plus 512 MB"):
        get_service("jenkins").checked({"target": "proxmox", "proxmox_memory_mb": 2048})


@pytest.mark.parametrize(
    ("stack_name", "repository", "build_step", "run"),
    [
        ("catalog-webapp-proxmox", "https://git.example.com/acme/hello-flask.git", "pip install --no-cache-dir -r requirements.txt gunicorn", "-p 8080:8000/tcp spawnit-webapp-flask:main"),
        ("acme-django", "https://git.example.com/acme/shop.git", "ENV ENTRYPOINT=shop.wsgi:application", "-p 8080:8000/tcp spawnit-webapp-django:main"),
        ("acme-express", "https://git.example.com/acme/api.git", "RUN npm ci --omit=dev", "-p 8080:3000/tcp spawnit-webapp-express:v2.1.0"),
        ("acme-laravel", "https://git.example.com/acme/crm.git", "RUN composer install --no-dev", "-p 8081:8000/tcp spawnit-webapp-laravel:main"),
    ],
)
def test_webapp_builds_each_framework_from_its_git_url_on_a_proxmox_vm(all_stacks, stack_name, repository, build_step, run):
    files = {entry["path"]: entry["content"] for entry in user_data(all_stacks[stack_name])["write_files"]}
    dockerfile = files[f"/opt/spawnit/{stack_name}/app-build/Dockerfile"]
    assert f"ARG REPOSITORY={repository}" in dockerfile and build_step in dockerfile
    script = files["/var/lib/cloud/scripts/per-boot/spawnit-service.sh"]
    assert f"docker build -t {run.split()[-1]} /opt/spawnit/{stack_name}/app-build" in script and run in script


def test_the_vm_takes_the_sizes_and_network_it_is_given(all_stacks):
    (vm,) = all_stacks["acme-django"].resources("proxmox_virtual_environment_vm").values()
    assert (vm["cpu"][0]["cores"], vm["memory"][0]["dedicated"], vm["disk"][0]["size"]) == (4, 4096, 40)
    assert vm["network_device"] == [{"bridge": "vmbr1", "model": "virtio"}]


def test_no_proxmox_credential_is_ever_in_a_stack(all_stacks):
    for name, stack in all_stacks.items():
        for provider in stack.document.get("provider", {}).get("proxmox", []):
            assert set(provider) <= {"endpoint", "insecure", "ssh"}, name
            assert provider["ssh"] == [{"agent": True, "username": "root"}], name


# The cluster through proxmoxer, against fakepve ------------------------------------------------


@pytest.fixture
def pve(fakepve):
    """A fake three-node cluster: pve1 and pve2 online (4 CPUs, 6 GB free, 100 GB per datastore), pve3 offline;
    ``local`` holds snippets; the platform's API token; a VM acme-web on pve1."""
    fakepve.add_node("pve2")
    fakepve.add_node("pve3", online=False)
    fakepve.apitokens[TOKEN_ID] = TOKEN_SECRET
    fakepve.storages["local"]["content"] = "iso,vztmpl,backup,snippets"
    fakepve.add_vm(100, "acme-web", node="pve1", status="running", config={"cores": 2, "memory": 2048})
    return fakepve


@pytest.fixture
def cluster(pve, fakepve_url, fakepve_cafile):
    return ProxmoxCluster(fakepve_url + "/", TOKEN_ID, TOKEN_SECRET, verify=fakepve_cafile)


def test_nodes_show_their_free_cpu_memory_and_storage(cluster):
    nodes = {node.node: node for node in cluster.nodes()}
    assert sorted(nodes) == ["pve1", "pve2", "pve3"]
    pve1 = nodes["pve1"]
    assert (pve1.online, pve1.cores, pve1.memory_mb, pve1.free_memory_mb, pve1.guests) == (True, 4, 8192, 6144, 1)
    assert [(s.storage, s.free_gb, "snippets" in s.content) for s in pve1.storages] == [("local", 100.0, True), ("local-lvm", 100.0, False)]
    assert (nodes["pve3"].online, nodes["pve3"].storages) == (False, [])


def request(**changes) -> GuestRequest:
    return GuestRequest(**{"node": "pve1", "cores": 2, "memory_mb": 2048, "disk_gb": 20, "storage": "local-lvm", "snippets_storage": "local", **changes})


def test_a_request_that_fits_passes_the_pre_flight(cluster):
    cluster.preflight(request())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"memory_mb": 12288}, "proxmox_memory_mb = 12288 is more than node pve1's 6144 MB of free memory"),
        ({"cores": 8}, "proxmox_cores = 8 is more than node pve1's 4 CPUs"),
        ({"disk_gb": 200}, "proxmox_disk_gb = 200 is more than the 100 GB free on local-lvm (node pve1)"),
        ({"node": "pve9"}, "proxmox_node = 'pve9' is not a node of the cluster; allowed: pve1, pve2, pve3"),
        ({"node": "pve3"}, "proxmox_node = 'pve3' is offline; allowed: an online node (pve1, pve2)"),
        ({"storage": "ceph"}, "proxmox_storage = 'ceph' is not on node pve1; allowed: local, local-lvm"),
        ({"snippets_storage": "local-lvm"}, "proxmox_snippets_storage = 'local-lvm' does not hold snippets on node pve1; allowed: local"),
    ],
)
def test_the_pre_flight_refuses_what_the_node_cannot_hold_naming_the_resource(cluster, changes, message):
    with pytest.raises(ProxmoxError) as error:
        cluster.preflight(request(**changes))
    assert error.value.status == 422 and message in error.value.message


def test_the_live_status_of_a_guest_and_its_failed_last_task(cluster, pve):
    assert cluster.guest("acme-web")["status"] == "running" and cluster.guest("nobody") is None
    pve.vm(100).status = "stopped"
    pve.fail("POST", "/nodes/pve1/qemu/100/status/start", error="start_failed")
    cluster.api.nodes("pve1").qemu(100).status.start.post()  # someone starts it; PVE's task fails
    status = _until(lambda: cluster.guest("acme-web"), lambda s: s["last_task"] is not None)
    assert (status["node"], status["vmid"], status["kind"], status["status"]) == ("pve1", 100, "vm", "stopped")
    assert status["last_task"]["type"] == "qmstart" and status["last_task"]["ok"] is False and status["last_task"]["status"]


def test_a_guest_on_an_offline_node_is_reported_as_such(cluster, pve):
    pve.set_node_offline("pve1")
    status = cluster.guest("acme-web")
    assert (status["status"], status["message"]) == ("unknown", "node pve1 is offline")


def test_a_refused_token_is_a_502_that_names_the_settings_not_the_secret(pve, fakepve_url, fakepve_cafile):
    with pytest.raises(ProxmoxError) as error:
        ProxmoxCluster(fakepve_url + "/", TOKEN_ID, "wrong-secret", verify=fakepve_cafile).nodes()
    assert error.value.status == 502 and "SPAWNIT_PROXMOX_TOKEN_SECRET" in error.value.message and "wrong-secret" not in error.value.message


def test_an_untrusted_certificate_and_an_unreachable_cluster_are_503s(pve, fakepve_url):
    with pytest.raises(ProxmoxError, match="certificate is not trusted; set SPAWNIT_PROXMOX_CA_FILE") as error:
        ProxmoxCluster(fakepve_url + "/", TOKEN_ID, TOKEN_SECRET).nodes()
    assert error.value.status == 503
    with pytest.raises(ProxmoxError, match=r"Proxmox at https://127\.0\.0\.1:9/ cannot be reached") as error:
        ProxmoxCluster("https://127.0.0.1:9/", TOKEN_ID, TOKEN_SECRET).nodes()
    assert error.value.status == 503


def test_a_missing_setting_names_the_variables_to_set():
    with pytest.raises(ProxmoxError, match="set SPAWNIT_PROXMOX_TOKEN_ID, SPAWNIT_PROXMOX_TOKEN_SECRET") as error:
        ProxmoxCluster.from_environment({"SPAWNIT_PROXMOX_ENDPOINT": "https://pve:8006/"})
    assert error.value.status == 503


def _until(read, ok, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if ok(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


# The API and the UI ----------------------------------------------------------------------------


@pytest.fixture
def api(tmp_path, cluster, synth_worker):
    store = Store(LocalObjectStore(tmp_path / "store"))
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work")
    with TestClient(create_app(store=store, jobs=jobs, auth=AuthSettings("off"), proxmox=lambda: cluster)) as client:
        client.store = store
        yield client


def test_the_api_lists_the_cluster_nodes_and_their_free_resources(api):
    response = api.get("/api/targets/proxmox/resources")
    assert response.status_code == 200
    nodes = {node["node"]: node for node in response.json()["nodes"]}
    assert nodes["pve1"]["free_memory_mb"] == 6144 and nodes["pve3"]["online"] is False
    assert [storage["storage"] for storage in nodes["pve2"]["storages"]] == ["local", "local-lvm"]


def test_the_catalog_offers_the_proxmox_target_for_every_service(api):
    for service in api.get("/api/catalog").json()["services"]:
        assert service["targets"] == ["docker", "aws", "proxmox"]
        assert service["parameters"]["properties"]["target"]["enum"] == ["docker", "aws", "proxmox"]


def test_an_instance_too_large_for_its_node_is_a_422_and_nothing_is_stored(api):
    body = {"service": "redis", "target": "proxmox", "instance": "cache", "parameters": {"proxmox_node": "pve1", "proxmox_memory_mb": 12288}}
    response = api.post("/api/clients/acme/instances", json=body)
    assert response.status_code == 422
    assert "proxmox_memory_mb = 12288 is more than node pve1's 6144 MB of free memory" in response.json()["error"]
    assert api.store.get_spec("acme", "cache") is None


def test_an_instance_that_fits_is_stored_and_its_view_shows_the_guest_live(api, pve):
    body = {"service": "nginx", "target": "proxmox", "instance": "site", "parameters": {"proxmox_node": "pve2"}}
    response = api.post("/api/clients/acme/instances", json=body)
    assert response.status_code == 201, response.text
    assert api.get("/api/clients/acme/instances/site").json()["live"] == {"status": "absent"}
    pve.add_vm(101, "acme-site", node="pve2", status="running", config={"cores": 2, "memory": 1024})
    live = api.get("/api/clients/acme/instances/site").json()["live"]
    assert (live["node"], live["vmid"], live["status"]) == ("pve2", 101, "running")


def test_a_change_that_no_longer_fits_is_refused_and_the_spec_is_unchanged(api):
    assert api.post("/api/clients/acme/instances", json={"service": "nginx", "target": "proxmox", "instance": "web", "parameters": {}}).status_code == 422
    created = api.post("/api/clients/acme/instances", json={"service": "nginx", "target": "proxmox", "instance": "web", "parameters": {"proxmox_node": "pve1"}})
    assert created.status_code == 201
    response = api.patch("/api/clients/acme/instances/web", json={"parameters": {"proxmox_cores": 8}})
    assert response.status_code == 422 and "proxmox_cores = 8 is more than node pve1's 4 CPUs" in response.json()["error"]
    assert api.store.get_spec("acme", "web")["parameters"]["proxmox_cores"] == 2


def test_when_the_cluster_refuses_the_token_the_api_answers_502_and_the_instance_view_still_works(tmp_path, pve, fakepve_url, fakepve_cafile, synth_worker):
    refused = ProxmoxCluster(fakepve_url + "/", TOKEN_ID, "wrong", verify=fakepve_cafile)
    store = Store(LocalObjectStore(tmp_path / "store"))
    store.put_spec("acme", "web", {"client": "acme", "instance": "web", "service": "nginx", "target": "proxmox", "parameters": {}, "last_job": None, "drift": "unknown"})
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work")
    with TestClient(create_app(store=store, jobs=jobs, auth=AuthSettings("off"), proxmox=lambda: refused)) as client:
        response = client.get("/api/targets/proxmox/resources")
        assert response.status_code == 502 and "401 authentication failure" in response.json()["error"]
        view = client.get("/api/clients/acme/instances/web")
        assert view.status_code == 200 and view.json()["live"]["status"] == "unavailable"


def test_without_settings_the_proxmox_routes_say_what_to_configure(tmp_path, synth_worker, monkeypatch):
    for name in ("SPAWNIT_PROXMOX_ENDPOINT", "SPAWNIT_PROXMOX_TOKEN_ID", "SPAWNIT_PROXMOX_TOKEN_SECRET"):
        monkeypatch.delenv(name, raising=False)
    store = Store(LocalObjectStore(tmp_path / "store"))
    jobs = JobManager(store, synth_worker, workdir=tmp_path / "work")
    with TestClient(create_app(store=store, jobs=jobs, auth=AuthSettings("off"))) as client:
        response = client.get("/api/targets/proxmox/resources")
        assert response.status_code == 503 and "set SPAWNIT_PROXMOX_ENDPOINT" in response.json()["error"]
        created = client.post("/api/clients/acme/instances", json={"service": "nginx", "target": "proxmox", "parameters": {}})
        assert created.status_code == 503 and store.list_instances("acme") == []

