"""Settings files and variables, read the same way for every application.

Each application keeps its typed settings beside its stacks (GreenLeaf's environments:
:mod:`spawnit.stacks.environment_settings`; Spotilike's: :mod:`spawnit.stacks.spotilike_settings`; the
self-hosted platform's: :mod:`spawnit.stacks.platform_settings`) and reads them through what is here: the
configuration file (``spawnit.toml``, or TOML/JSON named by ``SPAWNIT_CONFIG``) with one section per
application, the value types they share, and :class:`ConfigError`, whose message names the field, the
value, where it came from and what is allowed.
"""

from __future__ import annotations

import ipaddress
import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import StringConstraints

from .shared import AMI_ID_PATTERN

# The configuration file's sections: [all] and one per GreenLeaf environment, then one per application.
SECTIONS = ("all", "dev", "preprod", "prod", "platform", "spotilike")
CONFIG_FILE_ENV = "SPAWNIT_CONFIG"
DEFAULT_CONFIG_FILE = "spawnit.toml"

ProjectName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,20}[a-z0-9]$")]
Region = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d$")]
AvailabilityZone = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-\d[a-z]$")]
InstanceType = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]*\.[a-z0-9]+$")]
DbInstanceClass = Annotated[str, StringConstraints(pattern=r"^db\.[a-z][a-z0-9-]*\.[a-z0-9]+$")]
CacheNodeType = Annotated[str, StringConstraints(pattern=r"^cache\.[a-z][a-z0-9-]*\.[a-z0-9]+$")]
Email = Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")]
ClockTime = Annotated[str, StringConstraints(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")]
Weekdays = Annotated[str, StringConstraints(pattern=r"^(MON|TUE|WED|THU|FRI|SAT|SUN)(-(MON|TUE|WED|THU|FRI|SAT|SUN))?$")]
Image = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._/:@-]*$", max_length=255)]
BucketName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")]
TableName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{3,255}$")]
Hostname = Annotated[str, StringConstraints(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$", max_length=253)]
# A Medusa publishable API key as the backend makes them ("pk_" and 64 hex digits), or empty.
PublishableKey = Annotated[str, StringConstraints(pattern=r"^(pk_[0-9a-f]{64})?$")]
HttpsUrl = Annotated[str, StringConstraints(pattern=r"^https://[A-Za-z0-9.-]+(:\d+)?(/\S*)?$")]
AmiId = Annotated[str, StringConstraints(pattern=AMI_ID_PATTERN)]
Cidr = ipaddress.IPv4Network
SubnetPair = tuple[Cidr, Cidr]


class ConfigError(ValueError):
    """A configuration value is invalid; the message says which, where from, and what is allowed."""


def config_path(config_file: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    if config_file is not None:
        path = Path(config_file)
    elif environ.get(CONFIG_FILE_ENV):
        path = Path(environ[CONFIG_FILE_ENV])
    elif Path(DEFAULT_CONFIG_FILE).is_file():
        return Path(DEFAULT_CONFIG_FILE)
    else:
        return None
    if not path.is_file():
        raise ConfigError(f"config file: {str(path)!r} does not exist; allowed: a .toml or .json file")
    return path


def read_config_file(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    try:
        document = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"config file {path}: not valid {'JSON' if path.suffix == '.json' else 'TOML'}: {error}") from None
    if not isinstance(document, dict):
        raise ConfigError(f"config file {path}: expected a table of sections; allowed keys: {', '.join(SECTIONS)}")
    for key, table in document.items():
        if key not in SECTIONS:
            raise ConfigError(f"config file {path}: unknown section {key!r}; allowed: {', '.join(SECTIONS)}")
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: section {key!r} must be a table of fields")
    return document


# Every SPAWNIT_* variable that is not an application's setting: the product's other settings (the server's,
# the workers', the tools'). A SPAWNIT_* variable named nowhere here nor as a field is a misspelling; a
# test finds every SPAWNIT_* name in the sources and checks it is one or the other.
OTHER_VARIABLES = (
    "SPAWNIT_CONFIG", "SPAWNIT_TOFU", "SPAWNIT_AUTH", "SPAWNIT_DATA_DIR", "SPAWNIT_LOG", "SPAWNIT_ROOT", "SPAWNIT_REDIS_URL",
    "SPAWNIT_BOAVIZTA_PYTHON", "SPAWNIT_CHECKOV", "SPAWNIT_CLIENT_BUDGET_USD", "SPAWNIT_EAGER_BINDINGS", "SPAWNIT_PLAN_TTL",
    "SPAWNIT_PLUGIN_CACHE", "SPAWNIT_PROVIDER_MIRROR", "SPAWNIT_PROVIDER_VERSIONS", "SPAWNIT_QUEUE_TIMEOUT", "SPAWNIT_SECRET_KEY",
    "SPAWNIT_SECRET_KEY_FILE", "SPAWNIT_SSH_AUTH_SOCK", "SPAWNIT_TRUSTED_PROXIES", "SPAWNIT_DOCKER_CERT_PATH",
)
OTHER_PREFIXES = (
    "SPAWNIT_S3_", "SPAWNIT_PROXMOX_", "SPAWNIT_SPOTILIKE_", "SPAWNIT_OIDC_", "SPAWNIT_DRIFT_", "SPAWNIT_JOB_", "SPAWNIT_API_",
    "SPAWNIT_USER_", "SPAWNIT_PLATFORM_", "SPAWNIT_AWS_", "SPAWNIT_EXPIRY_", "SPAWNIT_TEST_",
)

