"""EnvironmentSpec: embedded defaults, overrides from a file or environment variables, clear errors."""

from __future__ import annotations

import json
from ipaddress import IPv4Network

import pytest
from pydantic import ValidationError

from spawnit.config import ConfigError
from spawnit.stacks.environment_settings import EnvironmentSpec, load_spec


def spec(name="prod", *, environ=None, config_file=None, **overrides):
    return load_spec(name, environ=environ or {}, config_file=config_file, overrides=overrides)


def test_embedded_defaults_differ_per_environment():
    dev, preprod, prod = spec("dev"), spec("preprod"), spec("prod")
    assert (dev.architecture, dev.nat) == ("devbox", "none")
    assert (preprod.db_instance_class, preprod.db_multi_az, preprod.off_hours) == ("db.t3.micro", False, True)
    assert (prod.db_instance_class, prod.db_multi_az, prod.deletion_protection, prod.alerts) == ("db.t3.medium", True, True, True)


def test_spec_is_frozen():
    with pytest.raises(ValidationError):
        spec().region = "eu-west-1"


def test_toml_file_overrides_all_then_one_environment(tmp_path):
    config = tmp_path / "spawnit.toml"
    config.write_text(
        '[all]\nregion = "eu-west-1"\nmonthly_budget_usd = 300\n'
        '[prod]\nalert_emails = ["ops@example.com"]\nallowed_http_cidrs = ["173.245.48.0/20"]\n'
    )
    prod, dev = spec("prod", config_file=config), spec("dev", config_file=config)
    assert (prod.region, prod.availability_zones) == ("eu-west-1", ("eu-west-1a", "eu-west-1b"))
    assert prod.alert_emails == ("ops@example.com",) and prod.allowed_http_cidrs == (IPv4Network("173.245.48.0/20"),)
    assert (dev.region, dev.monthly_budget_usd, dev.alert_emails) == ("eu-west-1", 300, ())


def test_json_file_is_read_too(tmp_path):
    config = tmp_path / "spawnit.json"
    config.write_text(json.dumps({"preprod": {"app_instance_type": "t3.medium"}}))
    assert spec("preprod", config_file=config).app_instance_type == "t3.medium"


def test_environment_variables_override_the_file_and_one_environment_beats_all(tmp_path):
    config = tmp_path / "spawnit.toml"
    config.write_text('[all]\nnat_instance_type = "t3.nano"\n')
    environ = {"SPAWNIT_NAT_INSTANCE_TYPE": "t4g.nano", "SPAWNIT_PROD_APP_INSTANCE_TYPE": "m7i.large", "SPAWNIT_APP_INSTANCE_TYPE": "t3.medium"}
    prod = spec("prod", config_file=config, environ=environ)
    assert (prod.nat_instance_type, prod.app_instance_type) == ("t4g.nano", "m7i.large")
    assert spec("preprod", environ=environ).app_instance_type == "t3.medium"


def test_list_variables_take_commas_or_json():
    assert spec(environ={"SPAWNIT_SSH_CIDRS": "203.0.113.7/32, 198.51.100.0/24"}).ssh_cidrs == (
        IPv4Network("203.0.113.7/32"),
        IPv4Network("198.51.100.0/24"),
    )
    assert spec(environ={"SPAWNIT_ALERT_EMAILS": '["a@example.com"]'}).alert_emails == ("a@example.com",)


def test_config_file_named_by_environment_variable(tmp_path):
    config = tmp_path / "other.toml"
    config.write_text('[prod]\nfleet_max = 6\n')
    assert spec(environ={"SPAWNIT_CONFIG": str(config)}).fleet_max == 6


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({"SPAWNIT_PROD_REGION": "paris"}, ["prod.region = 'paris' is not allowed", "allowed: values matching", "(from environment SPAWNIT_PROD_REGION)"]),
        ({"SPAWNIT_NAT": "nat-box"}, ["prod.nat = 'nat-box' is not allowed", "allowed: 'instance', 'gateway' or 'none'"]),
        ({"SPAWNIT_ALLOWED_HTTP_CIDRS": "10.0.0.0/33"}, ["prod.allowed_http_cidrs.0 = '10.0.0.0/33'", "not a valid IPv4 network"]),
        ({"SPAWNIT_ALERT_EMAILS": "ops@example.com,nobody"}, ["prod.alert_emails.1 = 'nobody' is not allowed"]),
        ({"SPAWNIT_MONTHLY_BUDGET_USD": "-5"}, ["prod.monthly_budget_usd = '-5'", "greater than 0"]),
        ({"SPAWNIT_FLEET_MIN": "5"}, ["prod.fleet_min, fleet_desired, fleet_max = 5, 2, 4 are not allowed; allowed: fleet_min <= fleet_desired <= fleet_max", "fleet_min from environment SPAWNIT_FLEET_MIN"]),
        ({"SPAWNIT_APP_SUBNET_CIDRS": "10.1.10.0/24,10.0.20.0/24"}, ["app_subnet_cidrs = 10.1.10.0/24 is outside vpc_cidr 10.0.0.0/16"]),
        ({"SPAWNIT_DATA_SUBNET_CIDRS": "10.0.1.0/24,10.0.200.0/24"}, ["data_subnet_cidrs = 10.0.1.0/24 overlaps public_subnet_cidrs 10.0.1.0/24"]),
        ({"SPAWNIT_AVAILABILITY_ZONES": "eu-west-3a,eu-west-1b"}, ["availability_zones = 'eu-west-1b' is not in region 'eu-west-3'"]),
        ({"SPAWNIT_DB_INSTANCE_CLASS": "t3.medium"}, ["prod.db_instance_class = 't3.medium' is not allowed"]),
        ({"SPAWNIT_PUBLISHABLE_KEY": "sk_1234"}, ["prod.publishable_key = 'sk_1234' is not allowed", "allowed: values matching ^(pk_[0-9a-f]{64})?$"]),
    ],
)
def test_bad_values_name_the_field_the_value_and_what_is_allowed(environ, expected):
    with pytest.raises(ConfigError) as error:
        spec(environ=environ)
    for fragment in expected:
        assert fragment in str(error.value)


def test_unknown_field_in_a_file_lists_the_allowed_ones(tmp_path):
    config = tmp_path / "spawnit.toml"
    config.write_text('[prod]\nregoin = "eu-west-1"\n')
    with pytest.raises(ConfigError, match=r"unknown field 'regoin'; did you mean 'region'\? allowed: project, architecture, region"):
        spec(config_file=config)


def test_unknown_section_and_bad_syntax_are_reported(tmp_path):
    config = tmp_path / "spawnit.toml"
    config.write_text('[production]\nregion = "eu-west-1"\n')
    with pytest.raises(ConfigError, match=r"unknown section 'production'; allowed: all, dev, preprod, prod"):
        spec(config_file=config)
    config.write_text("[prod\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        spec(config_file=config)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        spec(config_file=tmp_path / "nope.toml")


def test_unknown_environment_is_an_error():
    with pytest.raises(ConfigError, match=r"environment: 'staging' is not allowed; allowed: dev, preprod, prod"):
        load_spec("staging", environ={})


def test_state_names_have_defaults_and_can_be_set():
    prod = spec()
    assert (prod.resolved_state_bucket, prod.resolved_state_lock_table, prod.state_key) == (
        "greenleaf-tfstate-eu-west-3",
        "greenleaf-tf-lock",
        "greenleaf/prod/terraform.tfstate",
    )
    custom = spec(state_bucket="greenleaf-tfstate-p2026-paris", state_lock_table="greenleaf-tf-lock")
    assert custom.resolved_state_bucket == "greenleaf-tfstate-p2026-paris"


def test_model_rejects_unknown_fields_directly():
    with pytest.raises(ValidationError):
        EnvironmentSpec(name="prod", regoin="eu-west-1")


def test_every_spawnit_variable_the_product_reads_is_a_field_or_a_named_setting():
    """A server or tool setting (SPAWNIT_CHECKOV, SPAWNIT_SECRET_KEY...) in the environment must never
    stop `spawnit synth` as a misspelled field: every SPAWNIT_* name in the sources, the image and the
    scripts is an environment's field (or SPAWNIT_<ENV>_<FIELD>) or one of the named other settings."""
    import re
    from pathlib import Path

    from spawnit.config import OTHER_PREFIXES, OTHER_VARIABLES
    from spawnit.stacks.environment_settings import ENVIRONMENTS, FIELDS, check_environ_names

    root = Path(__file__).resolve().parents[1]
    sources = [*root.joinpath("spawnit").rglob("*.py"), root / "Dockerfile", *root.joinpath("scripts").iterdir(), root / "README.md"]
    names = {name.rstrip("_") for path in sources if path.is_file() for name in re.findall(r"\bSPAWNIT_[A-Z0-9_]*[A-Z0-9]", path.read_text(errors="replace"))}
    fields = {f"SPAWNIT_{field.upper()}" for field in FIELDS} | {f"SPAWNIT_{env.upper()}_{field.upper()}" for env in ENVIRONMENTS for field in FIELDS}
    unnamed = sorted(name for name in names if name not in fields and name not in OTHER_VARIABLES and not name.startswith(OTHER_PREFIXES)
                     and not any(other.startswith(name + "_") for other in (*OTHER_VARIABLES, *OTHER_PREFIXES)))
    assert unnamed == ["SPAWNIT_PROD_FLEET_MAXX"]  # the README's example of a misspelling, refused
    check_environ_names({name: "x" for name in names if name in OTHER_VARIABLES})  # none of them is refused
