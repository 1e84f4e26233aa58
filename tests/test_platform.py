"""The platform deploys itself on Docker; the local environment; the Docker constructs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from spawnit.config import ConfigError
from spawnit.stacks.platform_settings import PlatformSettings, PlatformUser, load_platform_settings
from spawnit.constructs._common import asset
from spawnit.constructs.app import AppRelease
from spawnit.stacks.realm import API_CLIENT, WEB_CLIENT, realm_document

ROOT = Path(__file__).resolve().parents[1]

PLATFORM = ("platform-network", "platform-volumes", "platform-instances", "platform-configs")


def containers(stack) -> dict[str, dict]:
    return {body["name"]: body for body in stack.resources("docker_container").values()}


def image_name(stack, container) -> str:
    _, _, image = stack.resolve(container["image"].replace(".image_id}", ".id}"))
    return image["name"]


def unescape(text: str) -> str:
    """What the container receives: Terraform turns $${ into ${."""
    return text.replace("$${", "${")


@pytest.fixture(scope="module")
def manifest(outdir) -> dict:
    return json.loads((outdir / "manifest.json").read_text())["stacks"]


@pytest.fixture(scope="module")
def instances(all_stacks):
    return all_stacks["platform-instances"]


# Order and wiring ------------------------------------------------------------------------------


def test_four_platform_stacks_each_destroyable_on_its_own(all_stacks):
    assert all(name in all_stacks for name in PLATFORM)


def test_platform_stacks_deploy_in_dependency_order(manifest):
    assert set(manifest["platform-instances"]["dependencies"]) == {"platform-network", "platform-volumes"}
    assert manifest["platform-configs"]["dependencies"] == ["platform-instances"]
    assert manifest["platform-network"]["dependencies"] == [] and manifest["platform-volumes"]["dependencies"] == []


def test_instances_take_the_network_and_volumes_by_cross_stack_reference(instances):
    for container in containers(instances).values():
        assert container["networks_advanced"][0]["name"].startswith("${data.terraform_remote_state.cross-stack-reference-input-platform-network.")
        for volume in container.get("volumes", []):
            if "host_path" in volume:  # the workers drive the Docker engine they run on (the docker target)
                assert (volume["host_path"], volume["container_path"]) == ("/var/run/docker.sock", "/var/run/docker.sock")
                continue
            assert volume["volume_name"].startswith("${data.terraform_remote_state.cross-stack-reference-input-platform-volumes.")


def test_network_and_volumes_stacks_hold_what_they_say(all_stacks):
    assert all_stacks["platform-network"].only("docker_network")["name"] == "spawnit"
    assert {v["name"] for v in all_stacks["platform-volumes"].resources("docker_volume").values()} == {"spawnit-minio-data", "spawnit-keycloak-data", "spawnit-valkey-data"}


# MinIO, Keycloak, SpawnIt -----------------------------------------------------------------------


def test_minio_serves_s3_and_console_with_credentials_from_variables(instances):
    minio = containers(instances)["spawnit-minio"]
    assert image_name(instances, minio).startswith("minio/minio:RELEASE.")
    assert sorted((p["internal"], p["external"]) for p in minio["ports"]) == [(9000, 9000), (9001, 9001)]
    assert {"MINIO_ROOT_USER=${var.minio_root_user}", "MINIO_ROOT_PASSWORD=${var.minio_root_password}"} <= set(minio["env"])
    assert instances.document["variable"]["minio_root_password"]["sensitive"] is True
    assert minio["healthcheck"]["test"] == ["CMD", "mc", "ready", "local"] and minio["wait"] is True


def test_keycloak_26_imports_the_generated_realm(instances):
    keycloak = containers(instances)["spawnit-keycloak"]
    assert image_name(instances, keycloak).startswith("quay.io/keycloak/keycloak:26")
    assert keycloak["command"] == ["start", "--import-realm"]
    (upload,) = keycloak["upload"]
    assert upload["file"] == "/opt/keycloak/data/import/spawnit-realm.json"
    realm = json.loads(unescape(upload["content"]))
    assert realm["realm"] == "spawnit"
    assert {client["clientId"] for client in realm["clients"]} == {WEB_CLIENT, API_CLIENT}
    assert [user["username"] for user in realm["users"]] == ["admin"]
    assert keycloak["wait"] is True and "KC_HEALTH_ENABLED=true" in keycloak["env"]


def test_realm_passwords_are_placeholders_filled_from_sensitive_variables(instances):
    keycloak = containers(instances)["spawnit-keycloak"]
    realm = json.loads(unescape(keycloak["upload"][0]["content"]))
    credential = realm["users"][0]["credentials"][0]
    assert credential == {"type": "password", "value": "${SPAWNIT_USER_ADMIN_PASSWORD}", "temporary": True}
    assert "SPAWNIT_USER_ADMIN_PASSWORD=${var.user_admin_password}" in keycloak["env"]
    assert "SPAWNIT_API_CLIENT_SECRET=${var.api_client_secret}" in keycloak["env"]
    variables = instances.document["variable"]
    assert all(variables[name]["sensitive"] for name in ("user_admin_password", "api_client_secret", "keycloak_admin_password"))


def test_api_image_is_built_from_the_repository_dockerfile_which_runs_spawnit_serve(instances, outdir):
    api = containers(instances)["spawnit-api"]
    _, _, image = instances.resolve(api["image"].replace(".image_id}", ".id}"))
    assert image["name"] == "spawnit/platform:local"
    dockerfile = (Path(image["build"]["context"]) / image["build"]["dockerfile"]).read_text()
    assert 'CMD ["spawnit", "serve"' in dockerfile
    assert "sha256sum -c" in dockerfile  # OpenTofu is verified, not trusted


def test_api_starts_after_minio_keycloak_and_valkey_are_healthy(instances):
    keys = {body["name"]: key for key, body in instances.resources("docker_container").items()}
    api = containers(instances)["spawnit-api"]
    assert sorted(api["depends_on"]) == sorted(f"docker_container.{keys[name]}" for name in ("spawnit-minio", "spawnit-keycloak", "spawnit-valkey"))
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert "SPAWNIT_OIDC_AUDIENCE=spawnit-api" in api["env"] and "SPAWNIT_S3_ENDPOINT=http://minio:9000" in api["env"]


def test_ports_are_published_on_loopback_by_default(instances):
    published = {name: {port["ip"] for port in container.get("ports", [])} for name, container in containers(instances).items()}
    assert published == {
        "spawnit-minio": {"127.0.0.1"},
        "spawnit-keycloak": {"127.0.0.1"},
        "spawnit-api": {"127.0.0.1"},
        "spawnit-valkey": set(),  # reached on the platform network only
        "spawnit-worker-1": set(),
    }


# The orchestrator on Valkey ---------------------------------------------------------------------

REDIS_URL = "SPAWNIT_REDIS_URL=redis://:${urlencode(var.valkey_password)}@valkey:6379/0"


def test_valkey_keeps_its_data_and_runs_as_the_images_own_user(instances):
    valkey = containers(instances)["spawnit-valkey"]
    assert image_name(instances, valkey).startswith("valkey/valkey:8")
    assert valkey["env"] == ["VALKEY_PASSWORD=${var.valkey_password}"] and instances.document["variable"]["valkey_password"]["sensitive"] is True
    # The image's entrypoint (valkey-container's docker-entrypoint.sh) runs a first argument ending in .conf as
    # `valkey-server FILE` after setpriv to the valkey user; `sh -c ...` bypassed that and ran as root. The image
    # cannot be pulled here: the entrypoint's rule was read in its source, the config is run below by a real server.
    assert valkey["command"] == ["/usr/local/etc/valkey/spawnit.conf"]
    assert valkey["memory"] == 256 + 128
    (volume,) = valkey["volumes"]
    assert volume["container_path"] == "/data" and volume["volume_name"].startswith("${data.terraform_remote_state.cross-stack-reference-input-platform-volumes.")
    assert valkey["healthcheck"]["test"] == ["CMD-SHELL", 'VALKEYCLI_AUTH="$VALKEY_PASSWORD" valkey-cli ping | grep -q PONG'] and valkey["wait"] is True


def test_valkey_never_evicts_within_its_memory_bound_and_its_password_is_never_on_a_command_line(instances, tmp_path):
    """The config the container gets, rendered by the real Terraform core with a password holding quotes,
    backslashes and a newline, then run by a real server (Debian's redis-server: Valkey reads the same
    directives): maxmemory set (without it noeviction never applies), noeviction, append-only, the password
    required, and not in the process list."""
    import shutil
    import subprocess
    import sys

    import redis

    from conftest import free_port, wait_for_redis
    from tfcheck.core import prepare

    valkey = containers(instances)["spawnit-valkey"]
    (upload,) = valkey["upload"]
    assert upload["file"] == "/usr/local/etc/valkey/spawnit.conf"
    password = 'pa"ss\\word\nwith $pecial'
    # the content is a template in Terraform's JSON syntax: evaluated as a local of a .tf.json file
    (tmp_path / "render.tf.json").write_text(json.dumps({"variable": {"valkey_password": {"type": "string"}}, "locals": {"config": upload["content"]}}))
    core = prepare()
    rendered = subprocess.run(
        [sys.executable, "-m", "tfcheck.terraform", "console", f"-var=valkey_password={password}"], input="jsonencode(local.config)\n",
        cwd=tmp_path, env={**core.environment, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout.strip(), rendered.stderr
    config = json.loads(json.loads(rendered.stdout.strip()))
    assert password not in config.splitlines()  # escaped, not raw
    port = free_port()
    conf = tmp_path / "spawnit.conf"
    conf.write_text(config + f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n")
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", str(conf)], stdout=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, password=password)
        wait_for_redis(client, "redis-server with the platform's config")
        assert client.config_get("maxmemory") == {"maxmemory": str(256 * 1024 * 1024)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=port).ping()
        command_line = Path(f"/proc/{server.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert "pecial" not in command_line and "redis-server" in command_line
    finally:
        server.terminate()
        server.wait(10)


def test_api_and_workers_share_valkey_and_only_the_workers_run_jobs(instances):
    found = containers(instances)
    api, worker = found["spawnit-api"], found["spawnit-worker-1"]
    assert REDIS_URL in api["env"] and REDIS_URL in worker["env"]  # the password URL-encoded, from the variable
    assert api["command"] == ["spawnit", "serve", "--host", "0.0.0.0", "--port", "8000", "--worker-concurrency", "0"]
    assert worker["command"] == ["spawnit", "worker", "--concurrency", "2"]
    assert api["image"] == worker["image"]  # one image, built once
    assert "SPAWNIT_S3_ENDPOINT=http://minio:9000" in worker["env"] and "SPAWNIT_REDIS_URL" in " ".join(worker["healthcheck"]["test"])


def test_the_store_keys_have_names_no_provider_reads_and_api_and_workers_share_the_secret_key(instances):
    found = containers(instances)
    for name in ("spawnit-api", "spawnit-worker-1"):
        names = {entry.split("=", 1)[0] for entry in found[name]["env"]}
        assert {"SPAWNIT_S3_ACCESS_KEY_ID", "SPAWNIT_S3_SECRET_ACCESS_KEY", "SPAWNIT_SECRET_KEY"} <= names
        assert not names & {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"}  # the aws target's credentials are the operator's
        assert "SPAWNIT_SECRET_KEY=${var.secret_key}" in found[name]["env"]
    assert instances.document["variable"]["secret_key"]["sensitive"] is True


def test_several_api_replicas_sit_behind_a_caddy_front_on_the_api_port(all_stacks):
    scaled = containers(all_stacks["platform-instances-scaled"])
    replicas = ["spawnit-api", "spawnit-api-2", "spawnit-api-3"]
    assert all(not scaled[name].get("ports") for name in replicas)
    assert sorted(name for name in scaled if name.startswith("spawnit-worker")) == ["spawnit-worker-1", "spawnit-worker-2"]
    front = scaled["spawnit-front"]
    assert [(port["internal"], port["external"]) for port in front["ports"]] == [(8000, 8000)]
    caddyfile = front["upload"][0]["content"]
    assert "reverse_proxy spawnit-api:8000 spawnit-api-2:8000 spawnit-api-3:8000 {" in caddyfile and "flush_interval -1" in caddyfile
    assert len(front["depends_on"]) == 3


def test_the_front_caddyfile_is_valid_and_balances_over_the_healthy_replicas(tmp_path):
    """Real Caddy with the front's Caddyfile before two replicas answering their name, then one of them gone."""
    import subprocess

    import httpx

    from conftest import answering_server, free_port, running_caddy
    from spawnit.stacks.platform import front_caddyfile

    one, two = answering_server("one"), answering_server("two")
    listen = free_port()
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(front_caddyfile([f"127.0.0.1:{one.server_port}", f"127.0.0.1:{two.server_port}"], listen=listen))
    validated = subprocess.run(["caddy", "validate", "--config", str(caddyfile), "--adapter", "caddyfile"], capture_output=True, text=True)
    assert validated.returncode == 0, validated.stderr

    def answer() -> str:
        return httpx.get(f"http://127.0.0.1:{listen}/", timeout=10).text

    try:
        with running_caddy(caddyfile, listen, tmp_path):
            assert {answer() for _ in range(6)} == {"one", "two"}  # round robin
            two.shutdown()
            two.server_close()
            assert {answer() for _ in range(6)} == {"one"}  # a replica that is down gets no requests (passive retry to the next)
    finally:
        one.shutdown()


# The store ------------------------------------------------------------------------------------


def test_configs_create_the_versioned_bucket_and_its_folders_through_minio(all_stacks):
    configs = all_stacks["platform-configs"]
    assert configs.only("aws_s3_bucket")["bucket"] == "spawnit"
    assert configs.only("aws_s3_bucket_versioning")["versioning_configuration"]["status"] == "Enabled"
    assert sorted(body["key"] for body in configs.resources("aws_s3_object").values()) == ["clients/", "templates/", "tfstates/"]
    provider = configs.document["provider"]["aws"][0]
    assert provider["endpoints"] == [{"s3": "http://127.0.0.1:9000"}] and provider["s3_use_path_style"] is True
    assert (provider["access_key"], provider["secret_key"]) == ("${var.minio_root_user}", "${var.minio_root_password}")


# Realm and settings ---------------------------------------------------------------------------


def test_web_client_uses_code_flow_with_pkce_and_puts_the_api_in_the_audience():
    realm = realm_document(PlatformSettings())
    web = next(client for client in realm["clients"] if client["clientId"] == WEB_CLIENT)
    assert web["publicClient"] is True and web["standardFlowEnabled"] is True and web["implicitFlowEnabled"] is False
    assert web["attributes"]["pkce.code.challenge.method"] == "S256"
    assert web["protocolMappers"][0]["config"]["included.client.audience"] == API_CLIENT


def test_default_users_come_from_the_config_file(tmp_path):
    config = tmp_path / "spawnit.toml"
    config.write_text(
        '[platform]\napi_port = 8088\n[[platform.users]]\nusername = "alice"\nemail = "alice@example.com"\nroles = ["admin"]\n'
        '[[platform.users]]\nusername = "bob"\nemail = "bob@example.com"\n'
    )
    settings = load_platform_settings(config_file=config, environ={})
    assert settings.users == (
        PlatformUser(username="alice", email="alice@example.com", roles=("admin",)),
        PlatformUser(username="bob", email="bob@example.com"),
    )
    realm = realm_document(settings)
    assert [user["credentials"][0]["value"] for user in realm["users"]] == ["${SPAWNIT_USER_ALICE_PASSWORD}", "${SPAWNIT_USER_BOB_PASSWORD}"]
    assert realm["clients"][0]["redirectUris"] == ["http://localhost:8088/*"]


def test_team_memberships_become_keycloak_groups_and_the_groups_claim_grants_the_roles(tmp_path):
    """Keycloak's group-membership mapper writes each group's full path (/clients/acme/operator) in the
    "groups" claim ("full.path", "claim.name": its provider config, as in Keycloak's GroupMembershipMapper);
    no Keycloak server can be had here, so the claim is fed to the API's grants as Keycloak would write it."""
    config = tmp_path / "spawnit.toml"
    config.write_text(
        '[[platform.users]]\nusername = "alice"\nemail = "alice@example.com"\ngroups = ["/clients/acme/operator", "/clients/beta/viewer"]\n'
        '[[platform.users]]\nusername = "carol"\nemail = "carol@example.com"\ngroups = ["/clients/acme/operator"]\n'
    )
    realm = realm_document(load_platform_settings(config_file=config, environ={}))
    assert realm["groups"] == [{"name": "clients", "subGroups": [
        {"name": "acme", "subGroups": [{"name": "operator"}]}, {"name": "beta", "subGroups": [{"name": "viewer"}]}]}]
    assert [user["groups"] for user in realm["users"]] == [["/clients/acme/operator", "/clients/beta/viewer"], ["/clients/acme/operator"]]
    web = next(client for client in realm["clients"] if client["clientId"] == WEB_CLIENT)
    mapper = next(mapper for mapper in web["protocolMappers"] if mapper["protocolMapper"] == "oidc-group-membership-mapper")
    assert mapper["config"]["claim.name"] == "groups" and mapper["config"]["full.path"] == "true" and mapper["config"]["access.token.claim"] == "true"
    from spawnit.api.auth import Principal

    alice = Principal("f1e2", frozenset({"user"}), frozenset(realm["users"][0]["groups"]))
    assert alice.role_on("acme") == "operator" and alice.role_on("beta") == "viewer" and alice.role_on("gamma") is None
    config.write_text('[[platform.users]]\nusername = "dan"\nemail = "dan@example.com"\ngroups = ["/clients/acme/owner"]\n')
    with pytest.raises(ConfigError, match=r"users.0.groups.0"):
        load_platform_settings(config_file=config, environ={})


def test_bad_platform_settings_name_the_field(tmp_path):
    config = tmp_path / "spawnit.toml"
    config.write_text('[platform]\nkeycloak_port = 9000\n')
    with pytest.raises(ConfigError, match=r"ports: \[9000, 9001, 9000, 8000\] must be distinct"):
        load_platform_settings(config_file=config, environ={})
    config.write_text('[platform]\nusers = [{username = "Al", email = "al@example.com"}]\n')
    with pytest.raises(ConfigError, match=r"users.0.username"):
        load_platform_settings(config_file=config, environ={})


# Local environment ----------------------------------------------------------------------------


def test_local_environment_runs_the_whole_app_on_docker(all_stacks):
    local = all_stacks["local"]
    running = containers(local)
    release = AppRelease()
    assert set(running) == {f"greenleaf-local-{name}" for name in ("postgres", "redis", "backend", "storefront", "caddy")}
    assert image_name(local, running["greenleaf-local-backend"]) == release.backend_image
    assert image_name(local, running["greenleaf-local-storefront"]) == release.storefront_image
    assert image_name(local, running["greenleaf-local-caddy"]) == release.caddy_image


def test_local_caddy_uses_the_same_caddyfile_as_aws(all_stacks):
    caddy = containers(all_stacks["local"])["greenleaf-local-caddy"]
    assert caddy["upload"] == [{"file": "/etc/caddy/Caddyfile", "content": asset("app/Caddyfile")}]
    assert [(p["internal"], p["external"], p["ip"]) for p in caddy["ports"]] == [(80, 8080, "127.0.0.1")]


def test_local_backend_reaches_its_database_by_name_with_a_secret_password(all_stacks):
    local = all_stacks["local"]
    env = containers(local)["greenleaf-local-backend"]["env"]
    assert "DATABASE_URL=postgres://medusa:${urlencode(var.db_password)}@postgres:5432/medusa" in env
    assert "REDIS_URL=redis://redis:6379" in env
    assert all(local.document["variable"][name]["sensitive"] for name in ("db_password", "jwt_secret", "cookie_secret"))


def test_local_uploads_live_on_a_volume_and_the_storefront_gets_its_key(all_stacks):
    local = all_stacks["local"]
    backend = containers(local)["greenleaf-local-backend"]
    volumes = {key: body["name"] for key, body in local.resources("docker_volume").items()}
    (mount,) = backend["volumes"]
    assert mount["container_path"] == "/server/static"  # the image's folder for uploads without a bucket
    assert volumes[mount["volume_name"].split(".")[1]] == "greenleaf-local-media"
    assert "MEDUSA_PUBLISHABLE_KEY=${var.publishable_key}" in containers(local)["greenleaf-local-storefront"]["env"]
    assert "MEDUSA_FILE_URL=http://localhost:8080/static" in backend["env"]  # where Caddy publishes /static
    assert local.document["variable"]["publishable_key"]["default"] == ""


def test_local_backend_waits_for_healthy_postgres_and_redis(all_stacks):
    local = all_stacks["local"]
    keys = {body["name"]: key for key, body in local.resources("docker_container").items()}
    backend = containers(local)["greenleaf-local-backend"]
    assert sorted(backend["depends_on"]) == sorted(f"docker_container.{keys[f'greenleaf-local-{name}']}" for name in ("postgres", "redis"))
    assert all(containers(local)[f"greenleaf-local-{name}"]["wait"] for name in ("postgres", "redis"))


# Docker constructs ----------------------------------------------------------------------------


@pytest.fixture
def scope():
    from cdktf import App, TerraformStack

    return TerraformStack(App(), "constructs")


@pytest.mark.parametrize(
    "props, message",
    [
        ({"image": "Not An Image!"}, "DockerService image: 'Not An Image!' is not allowed; allowed: name:tag or name@sha256"),
        ({"restart": "sometimes"}, "DockerService restart: 'sometimes' is not allowed; allowed: no, on-failure, always, unless-stopped"),
        ({"memory_mb": 1}, "DockerService memory_mb: 1 is not allowed"),
        ({"files": {"relative/path": "x"}}, "DockerService files: 'relative/path' is not allowed; allowed: absolute paths"),
    ],
)
def test_docker_service_rejects_bad_props(scope, props, message):
    from spawnit.constructs.docker import DockerService

    with pytest.raises(ValueError, match=re.escape(message)):
        DockerService(scope, "svc", name="svc", **{"image": "nginx:1.27-alpine", **props})


def test_docker_service_pulls_by_digest_too(scope):
    from cdktf import Testing

    from spawnit.constructs.docker import DockerService

    digest = "nginx@sha256:" + "a" * 64
    DockerService(scope, "svc", name="svc", image=digest, env={"LITERAL": "${NOT_TERRAFORM}"})
    synthesized = json.loads(Testing.synth(scope))
    assert next(iter(synthesized["resource"]["docker_image"].values()))["name"] == digest
    assert next(iter(synthesized["resource"]["docker_container"].values()))["env"] == ["LITERAL=$${NOT_TERRAFORM}"]


@pytest.mark.parametrize("host", ["unix:///var/run/docker.sock", "ssh://deploy@build-host", "tcp://10.1.2.3:2376"])
def test_docker_provider_accepts_local_ssh_and_tcp_hosts(scope, host):
    from spawnit.constructs.docker import docker_provider

    assert docker_provider(scope, host=host) is not None


def test_docker_provider_rejects_other_hosts(scope):
    from spawnit.constructs.docker import docker_provider

    with pytest.raises(ValueError, match=r"docker host: 'http://x' is not allowed; allowed: a URL starting with unix://, ssh://, tcp://, npipe://"):
        docker_provider(scope, host="http://x")
