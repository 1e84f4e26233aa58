"""Service templates: the catalog as data files, checked on load, versioned, read from the store.

The built-in services are template files; the Python classes they replaced are kept in
tests/legacy_catalog.py as the reference: every service on every target must synthesize the same JSON,
byte for byte.
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from spawnit.api.store import LocalObjectStore
from spawnit.services import TARGETS, ParameterError, all_services, get_service
from spawnit.services.catalog import Catalog, builtin_templates
from spawnit.services.template import InvalidTemplate, format_schema, load_template
from spawnit.shared import KEYCLOAK_IMAGE, MINIO_COMMAND, MINIO_IMAGE, keycloak_health, minio_health

from legacy_catalog import LEGACY

SCHEMA_FILE = Path(__file__).parent.parent / "spawnit" / "assets" / "catalog" / "service-template.schema.json"

MOSQUITTO = """\
# yaml-language-server: $schema=../service-template.schema.json
format: spawnit.dev/service-template/v1
name: mosquitto
version: 1.0.0
category: messaging
description: Eclipse Mosquitto MQTT broker.
maintainer: messaging team <mqtt@example.com>
parameters:
  port:
    type: integer
    minimum: 1024
    maximum: 65535
    default: 1883
    description: Published MQTT port.
  memory_mb:
    type: integer
    minimum: 32
    maximum: 4096
    default: 128
    description: Memory limit of the broker.
containers:
  - name: mosquitto
    image: eclipse-mosquitto:2.0
    command: [mosquitto, -c, /mosquitto-no-auth.conf]
    ports:
      - {container: 1883, published: "{{ port }}", description: MQTT}
    volumes:
      data: /mosquitto/data
    health:
      test: [CMD, mosquitto_sub, -t, "$SYS/#", -C, "1", -W, "3"]
    memory_mb: "{{ memory_mb }}"
targets:
  proxmox:
    min_memory_mb: 2048
"""


def mosquitto(version: str = "1.0.0", replace: dict[str, str] | None = None, **more: str) -> str:
    """The Mosquitto template in ``version``, each ``old: new`` of ``replace`` and ``more`` replaced."""
    text = MOSQUITTO.replace("version: 1.0.0", f"version: {version}")
    for old, new in {**(replace or {}), **more}.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


# The built-in services ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def legacy_outdir(tmp_path_factory) -> Path:
    """The catalog's example instances as the Python classes synthesized them (one App, this module)."""
    from cdktf import App

    from spawnit.services.stack import ServiceStack
    from spawnit.stacks import CATALOG_CLIENT, EXAMPLE_TARGETS

    outdir = tmp_path_factory.mktemp("legacy-catalog")
    app = App(outdir=str(outdir))
    for service in LEGACY.values():
        for target in TARGETS:
            ServiceStack(app, service=service, parameters=service.parse({**service.example, **EXAMPLE_TARGETS[target]}), client=CATALOG_CLIENT, instance=f"{service.name}-{target}")
    app.synth()
    return outdir


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", sorted(LEGACY))
def test_every_built_in_template_synthesizes_byte_for_byte_what_its_python_class_did(outdir, legacy_outdir, name, target):
    stack = f"catalog-{name}-{target}"
    assert (outdir / "stacks" / stack / "cdk.tf.json").read_bytes() == (legacy_outdir / "stacks" / stack / "cdk.tf.json").read_bytes()


VARIANTS = [
    ("webapp", {"git_url": "https://git.example.com/a/shop.git", "framework": "django", "entrypoint": "shop.wsgi:application", "ref": "release/2.0"}),
    ("webapp", {"git_url": "https://git.example.com/a/api.git", "framework": "express", "ref": "v2.1.0", "port": 8081}),
    ("webapp", {"git_url": "https://git.example.com/a/crm.git", "framework": "laravel"}),
    ("webapp", {"git_url": "https://git.example.com/a/hello.git", "framework": "flask", "entrypoint": "hello:create_app"}),
    ("redis", {"maxmemory_mb": 1000, "version": "7.2", "port": 7000}),
    ("minecraft", {"accept_eula": True, "memory_mb": 4096, "max_players": 50, "difficulty": "hard", "motd": "Hi {{ there }}"}),
    ("postgresql", {"version": "14", "database": "shop", "username": "owner", "memory_mb": 1024}),
    ("gitea", {"domain": "git.example.com", "http_port": 3100, "ssh_port": 2200}),
    ("nginx", {"index_html": "<p>{% raw %}{{ not a template }}{% endraw %}</p>\n"}),
]


@pytest.mark.parametrize(("name", "values"), VARIANTS, ids=[f"{name}-{index}" for index, (name, _) in enumerate(VARIANTS)])
def test_templates_render_the_containers_the_classes_described_for_other_parameters(name, values):
    # A value is never rendered as a template itself: "{{ there }}" reaches the container as written.
    template, legacy = get_service(name), LEGACY[name]
    assert template(template.checked(values)).containers() == legacy(legacy.checked(values)).containers()


@pytest.mark.parametrize(("name", "values", "message"), [
    ("webapp", {"git_url": "https://git.example.com/a/shop.git", "framework": "django"}, "entrypoint = None is required for django: give <project>.wsgi:application"),
    ("minecraft", {"accept_eula": False}, "accept_eula = False is the Minecraft EULA must be accepted (true) to run a server"),
    ("minio", {"api_port": 9100, "console_port": 9100}, "ports: 9100/tcp is published twice (minio and minio); allowed: distinct ports"),
])
def test_a_rule_across_parameters_is_refused_naming_the_field(name, values, message):
    with pytest.raises(ParameterError) as refused:
        get_service(name).checked(values)
    assert message in str(refused.value)


def test_the_images_the_platform_also_deploys_are_pinned_once():
    minio = get_service("minio")(get_service("minio").parse({})).containers()[0]
    keycloak = get_service("keycloak")(get_service("keycloak").parse({})).containers()[0]
    assert (minio.image, minio.command, minio.health) == (MINIO_IMAGE, MINIO_COMMAND, minio_health())
    assert (keycloak.image, keycloak.health) == (KEYCLOAK_IMAGE, keycloak_health())


def test_the_published_format_schema_is_the_one_the_code_checks_and_every_built_in_template_follows_it():
    published = json.loads(SCHEMA_FILE.read_text())
    assert published == format_schema(), "regenerate: python -m spawnit.services.template > spawnit/assets/catalog/service-template.schema.json"
    validator = jsonschema.Draft202012Validator(published)
    import yaml

    for loaded in builtin_templates():
        assert not list(validator.iter_errors(yaml.safe_load(loaded.data))), loaded.source
    # The schema refuses what the loader refuses: an unknown key.
    assert list(validator.iter_errors({**yaml.safe_load(MOSQUITTO), "colour": "blue"}))


def test_the_catalog_offers_the_ten_built_in_services_as_templates_in_version_1_0_0():
    services = all_services()
    assert sorted(services) == sorted(LEGACY)
    assert {service.version for service in services.values()} == {"1.0.0"}
    assert all(service.sha256 and len(service.sha256) == 64 for service in services.values())


# Checking a template ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "problem"), [
    (mosquitto(replace={"    image: eclipse-mosquitto:2.0\n": "    image: eclipse-mosquitto:2.0\n    imag: x\n"}),
     "mosquitto.yaml: containers.0.imag is not a field of a service template here; did you mean 'image'? allowed: name, image, build,"),
    (mosquitto(**{'published: "{{ port }}"': 'published: "{{ mqtt_port }}"'}),
     "mosquitto.yaml: containers.0.ports.0.published = '{{ mqtt_port }}' uses 'mqtt_port', which is not a parameter; did you mean 'port'? allowed: port, memory_mb and the shared ones"),
    (mosquitto(**{"      - {container: 1883": "      - {container: 8883, published: \"{{ port }}\"}\n      - {container: 1883"}),
     "mosquitto.yaml: ports: 1883/tcp is published twice (mosquitto and mosquitto); allowed: distinct ports"),
    (mosquitto(**{"image: eclipse-mosquitto:2.0": "image: Eclipse Mosquitto:2.0"}),
     "mosquitto.yaml: containers.0.image = 'Eclipse Mosquitto:2.0' is not allowed; allowed: an image reference, [registry/]name[:tag][@sha256:digest], lowercase name"),
    (mosquitto(**{"default: 1883": "default: 80"}),
     "mosquitto.yaml: parameters.port.default = 80 breaks the parameter's own rules: input should be greater than or equal to 1024; allowed: a value the parameter accepts"),
    (mosquitto(**{"default: 128": "default: lots"}),
     "mosquitto.yaml: parameters.memory_mb.default = 'lots' breaks the parameter's own rules: input should be a valid integer"),
    (mosquitto("1.0"), "mosquitto.yaml: version = 1.0 is not a semantic version; allowed: MAJOR.MINOR.PATCH, e.g. 1.0.0"),
    (mosquitto(**{"category: messaging": "category: chat"}), "mosquitto.yaml: category = 'chat' is not allowed; allowed: 'database', 'devtools'"),
    (mosquitto(**{"    volumes:\n": "    secrets: {MQTT_PASSWORD: password}\n    volumes:\n"}),
     "mosquitto.yaml: containers.0.secrets.MQTT_PASSWORD = 'password' is not a secret parameter; allowed: none declared (parameters with secret: true)"),
    (mosquitto(**{"    volumes:\n": "    depends_on: [db]\n    volumes:\n"}),
     "mosquitto.yaml: containers.0.depends_on = 'db' is not a container defined before this one; allowed: none"),
    (mosquitto(**{'"{{ memory_mb }}"': '"{{ memory_mb + }}"'}), "mosquitto.yaml: containers.0.memory_mb = '{{ memory_mb + }}' is not a valid expression"),
    (mosquitto(**{"    default: 1883\n": "    default: 1883\n    pattern: ^1$\n"}), "mosquitto.yaml: parameters.port.pattern = '^1$' is not allowed for type integer; allowed: on string"),
    (mosquitto(**{"name: mosquitto\n": "name: Mosquitto\n"}), "mosquitto.yaml: name = 'Mosquitto' is not allowed; allowed: values matching ^[a-z][a-z0-9-]{0,30}$"),
    (mosquitto(**{"  port:\n": "  aws_region:\n"}), "mosquitto.yaml: parameters.aws_region is a parameter every service already has"),
    ("format: [unclosed", "mosquitto.yaml: (file) is not valid YAML"),
    (mosquitto(**{"format: spawnit.dev/service-template/v1\n": ""}), "mosquitto.yaml: format is required"),
])
def test_a_broken_template_is_refused_naming_the_file_the_field_the_value_and_what_is_allowed(text, problem):
    with pytest.raises(InvalidTemplate) as refused:
        load_template(text.encode(), "mosquitto.yaml")
    assert problem in str(refused.value)


def test_a_secret_used_in_a_string_is_refused_it_reaches_containers_through_secrets_only():
    text = mosquitto(replace={"  memory_mb:\n": "  password:\n    type: string\n    secret: true\n    description: The broker's password.\n  memory_mb:\n"},
                     **{"command: [mosquitto, -c, /mosquitto-no-auth.conf]": "command: [mosquitto, -P, '{{ password }}']"})
    with pytest.raises(InvalidTemplate) as refused:
        load_template(text.encode(), "mosquitto.yaml")
    assert "uses 'password', which is not a parameter (a secret reaches a container through `secrets`, never in a string)" in str(refused.value)


def test_a_template_runs_in_a_sandbox_where_only_the_parameters_exist():
    text = mosquitto(**{"image: eclipse-mosquitto:2.0": "image: \"eclipse-mosquitto:{{ port.__class__.__mro__ }}\""})
    with pytest.raises(InvalidTemplate) as refused:
        load_template(text.encode(), "mosquitto.yaml")
    assert "cannot be rendered" in str(refused.value) and "unsafe" in str(refused.value)


def test_a_template_service_has_the_same_schema_features_as_a_class_for_the_form():
    service = load_template(MOSQUITTO.encode(), "mosquitto.yaml").service
    schema = service.schema()
    assert schema["title"] == "mosquitto" and schema["additionalProperties"] is False
    assert schema["properties"]["port"] == {"default": 1883, "description": "Published MQTT port.", "maximum": 65535, "minimum": 1024, "title": "Port", "type": "integer"}
    assert schema["properties"]["memory_mb"]["title"] == "Memory (MB)"
    assert schema["properties"]["aws_region"]["x-target"] == "aws"
    parameters = service.checked({"target": "proxmox"})
    assert parameters.proxmox_memory(service(parameters).containers(), service.hints(parameters).proxmox_min_memory_mb) == 2048  # the template's hint


# The store's catalog ----------------------------------------------------------------------------------


@pytest.fixture
def objects(tmp_path) -> LocalObjectStore:
    return LocalObjectStore(tmp_path / "store")


def test_a_template_dropped_into_the_store_joins_the_catalog_and_its_version_is_recorded_once(objects):
    catalog = Catalog(objects, ttl=0)
    assert "mosquitto" not in catalog.services()
    objects.put("templates/mosquitto.yaml", MOSQUITTO.encode())
    assert catalog.get("mosquitto").version == "1.0.0"
    record = json.loads(objects.get("catalog/versions/mosquitto/1.0.0.json"))
    assert record["sha256"] == catalog.get("mosquitto").sha256 and record["published_by"] == "store"
    # A second replica sees the same, and another reader does not publish it twice.
    assert Catalog(objects, ttl=0).get("mosquitto").sha256 == record["sha256"]
    assert json.loads(objects.get("catalog/versions/mosquitto/1.0.0.json")) == record


def test_a_broken_template_in_the_store_is_reported_and_left_out_the_rest_of_the_catalog_still_works(objects):
    catalog = Catalog(objects, ttl=0)
    objects.put("templates/broken.yaml", mosquitto(**{"name: mosquitto": "name: mqtt", "default: 1883": "default: 80"}).encode())
    objects.put("templates/mosquitto.yaml", MOSQUITTO.encode())
    assert sorted(catalog.services()) == sorted([*LEGACY, "mosquitto"])
    [broken] = catalog.broken()
    assert broken.source == "templates/broken.yaml"
    assert broken.problems == ("parameters.port.default = 80 breaks the parameter's own rules: input should be greater than or equal to 1024; allowed: a value the parameter accepts",)


def test_a_published_version_never_changes_a_file_edited_afterwards_is_reported_not_used(objects):
    catalog = Catalog(objects, ttl=0)
    catalog.publish(MOSQUITTO.encode(), "mosquitto.yaml", by="alice")
    published = catalog.get("mosquitto", "1.0.0").sha256
    objects.put("templates/mosquitto/1.0.0.yaml", mosquitto(**{"default: 128": "default: 256"}).encode())
    with pytest.raises(ParameterError, match="service: 'mosquitto' is not in the catalog"):
        catalog.get("mosquitto")
    [broken] = catalog.broken()
    assert "differs from version 1.0.0 of 'mosquitto' as published" in broken.problems[0] and published[:12] in broken.problems[0]


def test_publishing_refuses_an_existing_version_a_built_in_one_and_a_broken_file_writing_nothing(objects):
    catalog = Catalog(objects, ttl=0)
    stored = catalog.publish(MOSQUITTO.encode(), "mosquitto.yaml", by="alice")
    assert stored.source == "templates/mosquitto/1.0.0.yaml"
    before = sorted(objects.list(""))
    with pytest.raises(InvalidTemplate, match="version = '1.0.0' of 'mosquitto' is published already"):
        catalog.publish(mosquitto(**{"default: 128": "default: 256"}).encode(), "mosquitto.yaml", by="alice")
    redis = next(loaded for loaded in builtin_templates() if loaded.name == "redis")
    with pytest.raises(InvalidTemplate, match="version = '1.0.0' of 'redis' is published already"):
        catalog.publish(redis.data.replace(b"maxmemory_mb + 64", b"maxmemory_mb + 32"), "redis.yaml", by="alice")
    with pytest.raises(InvalidTemplate, match="default = 80"):
        catalog.publish(mosquitto("1.1.0", **{"default: 1883": "default: 80"}).encode(), "mosquitto.yaml", by="alice")
    assert sorted(objects.list("")) == before
    index = json.loads(objects.get("catalog.json"))
    assert index["services"]["mosquitto"]["1.0.0"]["published_by"] == "alice"
    assert index["services"]["redis"]["1.0.0"]["source"] == "built in"


def test_versions_are_ordered_as_semver_and_a_deprecated_version_is_not_the_default(objects):
    catalog = Catalog(objects, ttl=0)
    for version in ("1.0.0", "1.10.0", "1.9.0"):
        catalog.publish(mosquitto(version).encode(), "mosquitto.yaml", by="alice")
    catalog.publish(mosquitto("2.0.0", **{"maintainer:": "deprecated: 'Use 1.10.0: 2.0.0 lost persistence.'\nmaintainer:"}).encode(), "m.yaml", by="alice")
    assert list(catalog.versions("mosquitto")) == ["1.0.0", "1.9.0", "1.10.0", "2.0.0"]
    assert catalog.get("mosquitto").version == "1.10.0"
    assert catalog.upgrades("mosquitto", "1.0.0") == ["1.9.0", "1.10.0"]
    with pytest.raises(ParameterError, match="service_version: '3.0.0' is not a version of 'mosquitto'; allowed: 1.0.0, 1.9.0, 1.10.0, 2.0.0"):
        catalog.get("mosquitto", "3.0.0")


def test_a_parameter_for_some_targets_is_marked_for_the_form_and_refused_on_another_target():
    text = mosquitto(replace={"  memory_mb:\n": "  bridge_address:\n    type: string\n    nullable: true\n    targets: [aws]\n    description: Another broker.\n  memory_mb:\n"})
    service = load_template(text.encode(), "mosquitto.yaml").service
    assert service.schema()["properties"]["bridge_address"]["x-target"] == "aws"
    assert service.checked({"target": "aws", "allowed_cidrs": ["0.0.0.0/0"], "bridge_address": "peer:1883"}).bridge_address == "peer:1883"
    with pytest.raises(ParameterError) as refused:
        service.checked({"target": "docker", "bridge_address": "peer:1883"})
    assert refused.value.fields == {"bridge_address": "bridge_address = 'peer:1883' is not used by target docker; allowed: only for target aws"}
