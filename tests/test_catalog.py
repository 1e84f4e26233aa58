"""The service catalog: parameters, schemas, and each service realized on the docker and aws targets (proxmox: test_proxmox)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator
from stackjson import written_files

from spawnit.cli import main
from spawnit.services import TARGETS, CatalogService, ContainerSpec, ParameterError, ServicePort, all_services, catalog_document, get_service

SERVICES = list(all_services())
EXPECTED = {"postgresql", "redis", "minio", "nginx", "wordpress", "gitea", "jenkins", "minecraft", "keycloak", "webapp"}


def catalog_stack(all_stacks, service: str, target: str):
    return all_stacks[f"catalog-{service}-{target}"]


def test_the_catalog_has_every_expected_service():
    assert EXPECTED <= set(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_schema_is_valid_json_schema_and_its_defaults_validate(name):
    service = get_service(name)
    schema = service.schema()
    Draft202012Validator.check_schema(schema)
    example = {**service.example}
    Draft202012Validator(schema).validate(example)
    parameters = service.parse(example)
    assert service.parse(json.loads(parameters.model_dump_json())) == parameters  # round trip


@pytest.mark.parametrize("name", SERVICES)
def test_parameters_reject_unknown_fields_bad_types_and_targets(name):
    service = get_service(name)
    for bad, fragment in (
        ({"bogus": 1}, "bogus = 1 is not a parameter of this service"),
        ({"target": "gcp"}, "target = 'gcp' is not allowed; allowed: 'docker', 'aws' or 'proxmox'"),
        ({"root_volume_gb": "big"}, "root_volume_gb = 'big' is not allowed"),
        ({"root_volume_gb": 2}, "root_volume_gb = 2 is not allowed: input should be greater than or equal to 8"),
    ):
        with pytest.raises(ParameterError) as error:
            service.parse({**service.example, **bad})
        assert fragment in str(error.value)


@pytest.mark.parametrize(
    "name, values, fragment",
    [
        ("postgresql", {"port": 80}, "port = 80 is not allowed: input should be greater than or equal to 1024"),
        ("postgresql", {"version": "9"}, "version = '9' is not allowed; allowed: '14', '15', '16' or '17'"),
        ("redis", {"maxmemory_mb": 1_000_000}, "maxmemory_mb = 1000000 is not allowed"),
        ("nginx", {"index_html": ""}, "index_html = '' is not allowed"),
        ("minecraft", {"accept_eula": False}, "the Minecraft EULA must be accepted"),
        ("minecraft", {"accept_eula": True, "max_players": 0}, "max_players = 0 is not allowed"),
        ("webapp", {"git_url": "http://insecure.example.com/app.git", "framework": "flask"}, "git_url = 'http://insecure.example.com/app.git' is not allowed"),
        ("webapp", {"git_url": "https://git.example.com/a/b.git", "framework": "rails"}, "framework = 'rails' is not allowed"),
        ("webapp", {"git_url": "https://git.example.com/a/b.git", "framework": "flask", "entrypoint": "app"}, "must be module:object"),
        ("gitea", {"http_port": "three thousand"}, "http_port = 'three thousand' is not allowed"),
        ("keycloak", {"admin_user": "a"}, "admin_user = 'a' is not allowed"),
        ("jenkins", {"memory_mb": 100}, "memory_mb = 100 is not allowed"),
        ("wordpress", {"site_url": "ftp://x"}, "site_url = 'ftp://x' is not allowed"),
        ("minio", {"api_port": 70000}, "api_port = 70000 is not allowed"),
    ],
)
def test_out_of_range_and_wrongly_typed_values_are_rejected(name, values, fragment):
    with pytest.raises(ParameterError, match=None) as error:
        get_service(name).parse(values)
    assert fragment in str(error.value)


def test_catalog_json_is_generated_from_the_classes():
    document = catalog_document()
    assert [entry["name"] for entry in document["services"]] == SERVICES
    for entry in document["services"]:
        service = get_service(entry["name"])
        assert entry["parameters"] == service.schema() and entry["category"] == service.category and entry["targets"] == ["docker", "aws", "proxmox"]


# Docker target ------------------------------------------------------------------------------


def containers_of(stack) -> dict[str, dict]:
    return {body["name"]: body for body in stack.resources("docker_container").values()}


def image_of(stack, container) -> str:
    _, _, image = stack.resolve(container["image"].replace(".image_id}", ".id}"))
    return image["name"]


@pytest.mark.parametrize("name", SERVICES)
def test_docker_target_runs_each_container_with_its_image_health_check_and_network(all_stacks, name):
    stack = catalog_stack(all_stacks, name, "docker")
    service = get_service(name)
    specs = service(service.parse(service.example)).containers()
    containers = containers_of(stack)
    assert set(containers) == {f"catalog-{name}-docker-{spec.name}" for spec in specs}
    for spec in specs:
        container = containers[f"catalog-{name}-docker-{spec.name}"]
        expected_image = spec.image if isinstance(spec.image, str) else spec.image.tag
        assert image_of(stack, container) == expected_image
        assert container["networks_advanced"][0]["aliases"] == [spec.name]
        assert container["restart"] == "unless-stopped"
        if spec.health:
            assert container["healthcheck"]["test"] == list(spec.health.test) and container["wait"] is True
        published = sorted((port["internal"], port["external"], port["ip"]) for port in container.get("ports", []))
        assert published == sorted((port.container, port.published, "127.0.0.1") for port in spec.ports)
        mounts = {volume["container_path"] for volume in container.get("volumes", [])}
        assert mounts == set(spec.volumes.values())


def test_postgres_on_docker_keeps_its_data_in_a_named_volume(all_stacks):
    stack = catalog_stack(all_stacks, "postgresql", "docker")
    (volume,) = stack.resources("docker_volume").values()
    assert volume["name"] == "catalog-postgresql-docker-data"
    (container,) = containers_of(stack).values()
    assert container["volumes"][0]["volume_name"].startswith("${docker_volume.")


def test_secrets_are_sensitive_variables_never_values(all_stacks):
    stack = catalog_stack(all_stacks, "wordpress", "docker")
    assert {name: body["sensitive"] for name, body in stack.document["variable"].items()} == {"db_password": True, "db_root_password": True}
    env = containers_of(stack)["catalog-wordpress-docker-wordpress"]["env"]
    assert "WORDPRESS_DB_PASSWORD=${var.db_password}" in env


def test_wordpress_starts_after_its_database_is_healthy(all_stacks):
    stack = catalog_stack(all_stacks, "wordpress", "docker")
    containers = containers_of(stack)
    (db_key,) = [key for key, body in stack.resources("docker_container").items() if body["name"].endswith("-db")]
    assert containers["catalog-wordpress-docker-wordpress"]["depends_on"] == [f"docker_container.{db_key}"]
    assert containers["catalog-wordpress-docker-db"]["wait"] is True


def test_nginx_uploads_the_site(all_stacks):
    (container,) = containers_of(catalog_stack(all_stacks, "nginx", "docker")).values()
    assert container["upload"][0]["file"] == "/usr/share/nginx/html/index.html" and "It works" in container["upload"][0]["content"]


def test_webapp_builds_its_image_from_a_generated_dockerfile(all_stacks, outdir):
    stack = catalog_stack(all_stacks, "webapp", "docker")
    (image,) = stack.resources("docker_image").values()
    dockerfile = (outdir / "stacks" / "catalog-webapp-docker" / image["build"]["context"] / "Dockerfile").read_text()
    assert dockerfile.startswith("FROM python:3.12-slim\nARG REPOSITORY=https://git.example.com/acme/hello-flask.git\nARG REF=main\n")
    assert "gunicorn" in dockerfile


# AWS target ---------------------------------------------------------------------------------


def instance_script(stack) -> tuple[dict, str]:
    (instance,) = stack.resources("aws_instance").values()
    return instance, written_files(instance)["/var/lib/cloud/scripts/per-boot/spawnit-service.sh"]


@pytest.mark.parametrize("name", SERVICES)
def test_aws_target_opens_exactly_the_service_ports(all_stacks, name):
    stack = catalog_stack(all_stacks, name, "aws")
    service = get_service(name)
    specs = service(service.parse(service.example)).containers()
    expected = {(port.published, port.protocol) for spec in specs for port in spec.ports}
    rules = stack.ingress_rules()
    assert {(rule.from_port, rule.protocol) for rule in rules} == expected
    assert all(rule.peer == "0.0.0.0/0" and rule.from_port == rule.to_port for rule in rules)


@pytest.mark.parametrize("name", SERVICES)
def test_aws_target_instance_is_hardened_and_runs_the_same_containers(all_stacks, name):
    stack = catalog_stack(all_stacks, name, "aws")
    instance, script = instance_script(stack)
    assert instance["metadata_options"]["http_tokens"] == "required"
    assert instance["root_block_device"]["encrypted"] is True
    service = get_service(name)
    for spec in service(service.parse(service.example)).containers():
        image = spec.image if isinstance(spec.image, str) else spec.image.tag
        assert f"--name catalog-{name}-aws-{spec.name} " in script and image in script


def test_aws_target_reads_secrets_from_secure_parameters(all_stacks):
    stack = catalog_stack(all_stacks, "postgresql", "aws")
    (parameter,) = stack.resources("aws_ssm_parameter").values()
    assert (parameter["type"], parameter["value"]) == ("SecureString", "${var.password}")
    _, script = instance_script(stack)
    assert '"$(secret /spawnit/catalog-postgresql-aws/password)"' in script


def test_allowed_cidrs_narrow_the_security_group(tmp_path, capsys):
    assert main(["synth", "--service", "redis", "--target", "aws", "--set", 'allowed_cidrs=["198.51.100.0/24"]', "--client", "acme", "--instance", "cache", "--outdir", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "stacks" / "acme-cache" / "cdk.tf.json").read_text())
    rules = list(document["resource"]["aws_vpc_security_group_ingress_rule"].values())
    assert [(rule["cidr_ipv4"], rule["from_port"]) for rule in rules] == [("198.51.100.0/24", 6379)]


def test_aws_boot_scripts_pass_shellcheck(all_stacks, tmp_path):
    for name in SERVICES:
        _, script = instance_script(catalog_stack(all_stacks, name, "aws"))
        path = tmp_path / f"{name}.sh"
        path.write_text(script)
        result = subprocess.run(["shellcheck", str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}: {result.stdout}"


# The command and extension ------------------------------------------------------------------


def test_catalog_command_lists_services_with_categories(capsys):
    assert main(["catalog"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SERVICE", "VERSION", "CATEGORY", "DESCRIPTION"]
    assert {line.split()[0] for line in lines[1:]} == set(SERVICES)
    assert main(["catalog", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["services"] == catalog_document()["services"]


def test_catalog_show_prints_the_parameter_schema(capsys):
    assert main(["catalog", "show", "postgresql"]) == 0
    assert json.loads(capsys.readouterr().out) == get_service("postgresql").schema()
    assert main(["catalog", "show", "oracle"]) == 2
    assert "service: 'oracle' is not in the catalog; allowed: gitea" in capsys.readouterr().err


def test_synth_service_with_bad_parameters_exits_2_and_writes_nothing(tmp_path, capsys):
    code = main(["synth", "--service", "postgresql", "--set", "port=80", "--set", "version=9", "--outdir", str(tmp_path / "out")])
    assert code == 2
    error = capsys.readouterr().err
    assert "port = 80 is not allowed" in error and "version = 9 is not allowed" in error
    assert not (tmp_path / "out").exists()


def test_synth_service_from_a_parameter_file_names_the_stack_after_client_and_instance(tmp_path, capsys):
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"port": 5433, "database": "shop"}))
    assert main(["synth", "--service", "postgresql", "--params", str(params), "--set", "memory_mb=1024", "--client", "acme", "--instance", "orders-db", "--outdir", str(tmp_path)]) == 0
    document = json.loads((tmp_path / "stacks" / "acme-orders-db" / "cdk.tf.json").read_text())
    (container,) = document["resource"]["docker_container"].values()
    assert container["name"] == "acme-orders-db-postgres" and container["memory"] == 1024
    assert container["ports"][0]["external"] == 5433 and "POSTGRES_DB=shop" in container["env"]


def test_bad_client_name_is_rejected(tmp_path, capsys):
    assert main(["synth", "--service", "nginx", "--client", "Acme Corp", "--outdir", str(tmp_path / "out")]) == 2
    assert "client: 'Acme Corp' is not allowed" in capsys.readouterr().err


def test_a_new_service_needs_no_change_elsewhere(tmp_path):
    from cdktf import App

    from spawnit.services.stack import ServiceStack

    class Echo(CatalogService):
        name = "echo-test"
        category = "test"
        description = "An HTTP echo server."

        def containers(self) -> list[ContainerSpec]:
            return [ContainerSpec(name="echo", image="hashicorp/http-echo:1.0", ports=(ServicePort(5678, 5678),))]

    try:
        assert get_service("echo-test") is Echo
        app = App(outdir=str(tmp_path))
        for target in TARGETS:
            parameters = Echo.parse({"target": target, **({"allowed_cidrs": ["198.51.100.0/24"]} if target == "aws" else {})})
            ServiceStack(app, service=Echo, parameters=parameters, client="tests", instance=f"echo-{target}")
        app.synth()
        docker = json.loads((tmp_path / "stacks" / "tests-echo-docker" / "cdk.tf.json").read_text())
        assert next(iter(docker["resource"]["docker_container"].values()))["ports"][0]["external"] == 5678
        aws = json.loads((tmp_path / "stacks" / "tests-echo-aws" / "cdk.tf.json").read_text())
        assert next(iter(aws["resource"]["aws_vpc_security_group_ingress_rule"].values()))["from_port"] == 5678
    finally:
        CatalogService.registry.pop("echo-test")


def test_catalog_listing_does_not_load_the_jsii_runtime():
    code = "import sys; from spawnit.services import catalog_document; catalog_document(); print('cdktf' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_every_parameter_and_category_has_a_label_written_for_people():
    from spawnit.services.base import CATEGORY_LABELS, field_label

    assert field_label("maxmemory_mb") == "Max memory (MB)" and field_label("aws_subnet_id") == "AWS subnet ID"
    document = catalog_document()
    for service in document["services"]:
        assert service["category_label"] == CATEGORY_LABELS[service["category"]]  # every category has its label
        for name, schema in service["parameters"]["properties"].items():
            title = schema["title"]
            assert title != name.replace("_", " ").title() or name in ("port", "version", "target", "database", "domain", "difficulty", "entrypoint", "framework", "username"), (service["name"], name, title)
            assert not {"Mb", "Gb", "Id", "Url", "Aws", "Ssh", "Http"} & set(title.split()), (service["name"], name, title)
    assert {service["category_label"] for service in document["services"]} >= {"PaaS", "Databases", "Developer tools"}


@pytest.mark.parametrize("name", ["9lives", "a" * 33, "cache-", "Cache"])
def test_one_instance_name_rule_for_the_command_line_and_the_api(name, tmp_path, capsys, synth_worker):
    from fastapi.testclient import TestClient

    from conftest import local_app
    from spawnit.shared import INSTANCE_NAME_RULE

    assert main(["synth", "--service", "redis", "--instance", name, "--outdir", str(tmp_path / "out")]) == 2
    assert f"instance: {name!r} is not allowed; allowed: {INSTANCE_NAME_RULE}" in capsys.readouterr().err
    with TestClient(local_app(tmp_path, synth_worker)) as api:
        refused = api.post("/api/clients/acme/instances", json={"service": "redis", "instance": name})
        assert refused.status_code == 422 and list(refused.json()["fields"]) == ["instance"]
        assert api.post("/api/clients/acme/instances", json={"service": "redis", "instance": "cache-2"}).status_code == 201


def test_a_misspelled_service_parameter_or_stack_is_answered_with_the_closest_name(outdir, capsys):
    with pytest.raises(ParameterError, match=r"service: 'postgres' is not in the catalog; did you mean 'postgresql'\? allowed: gitea"):
        get_service("postgres")
    with pytest.raises(ParameterError, match=r"maxmemory = 5 is not a parameter of this service; did you mean 'maxmemory_mb'\? allowed: target, "):
        get_service("redis").parse({"maxmemory": 5})
    assert main(["cost", "prdo", "--outdir", str(outdir)]) == 2
    assert "stack: 'prdo' is not in " in (err := capsys.readouterr().err) and "did you mean 'prod'? allowed: " in err
    assert main(["plan", "prdo"]) == 2
    assert "STACK: 'prdo' is not a stack of SpawnIt's applications; did you mean 'prod'? allowed: dev, preprod, prod" in capsys.readouterr().err
