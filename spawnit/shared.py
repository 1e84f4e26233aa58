"""Small types and values shared by the construct library, the catalog and the configuration.

No cdktf import here: every layer may import this module, the command line included, before
the provider runtime loads.
"""

from __future__ import annotations

import base64
import difflib
import gzip
from collections.abc import Iterable
from dataclasses import dataclass

# Images the catalog offers and the platform deploys itself with (one pin for both).
MINIO_IMAGE = "minio/minio:RELEASE.2024-11-07T00-52-20Z"
MINIO_COMMAND = ("server", "/data", "--console-address", ":9001")
KEYCLOAK_IMAGE = "quay.io/keycloak/keycloak:26.0"
VALKEY_IMAGE = "valkey/valkey:8.1-alpine"
CADDY_IMAGE = "caddy:2.10-alpine"

# GreenLeaf's own images: built from apps/greenleaf/ and pushed to GitHub's registry by
# .github/workflows/greenleaf-images.yml on a greenleaf-v<version> tag (the version in the apps' package.json).
GREENLEAF_BACKEND_IMAGE = "ghcr.io/greenleaf/medusa-backend:1.0.0"
GREENLEAF_STOREFRONT_IMAGE = "ghcr.io/greenleaf/medusa-storefront:1.0.0"
GREENLEAF_CADDY_IMAGE = "caddy:2.8-alpine"

# One rule for an instance's name wherever one is given (the API, the command line, the web form): it
# becomes part of stack, container and guest names. A client's name is looser: a token's subject (a UUID).
INSTANCE_NAME_PATTERN = r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$"
INSTANCE_NAME_RULE = "2-32 lowercase letters, digits and '-', starting with a letter, not ending with '-'"
CLIENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}[a-z0-9]$"
CLIENT_NAME_RULE = "2-64 lowercase letters, digits and '-', not starting or ending with '-'"

# Task sizes Fargate accepts (ECS developer guide, "Task CPU and memory"; RegisterTaskDefinition answers
# "No Fargate configuration exists for given values" to any other pair): CPU units -> memory MiB. The
# configuration checks them when it is read, the construct library when a service is made.
FARGATE_SIZES: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: (1024, 2048, 3072, 4096),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}


def fargate_size_problem(cpu: int, memory_mib: int) -> tuple[str, str] | None:
    """(field, what is wrong and allowed) when Fargate refuses this task size; None when it accepts it."""
    if cpu not in FARGATE_SIZES:
        return "cpu", f"{cpu} is not allowed; allowed: {', '.join(map(str, FARGATE_SIZES))} (CPU units)"
    allowed = FARGATE_SIZES[cpu]
    if memory_mib not in allowed:
        sizes = f"{allowed[0]}-{allowed[-1]} in steps of {allowed[1] - allowed[0]}" if len(allowed) > 4 else ", ".join(map(str, allowed))
        return "memory_mib", f"{memory_mib} is not allowed with cpu {cpu}; allowed: {sizes}"
    return None


# The client owning the catalog's example instances (stacks catalog-<service>-<target>).
CATALOG_CLIENT = "catalog"

# An EC2 image id, as the configuration and the construct library both check it.
AMI_ID_PATTERN = r"^ami-[0-9a-f]{8,17}$"


@dataclass(frozen=True)
class Health:
    """A health check command, as for Dockerfile HEALTHCHECK: ``("CMD", ...)`` or ``("CMD-SHELL", "...")``."""

    test: tuple[str, ...]
    interval: str = "10s"
    timeout: str = "5s"
    retries: int = 5
    start_period: str = "20s"

    def __post_init__(self) -> None:
        if not self.test or self.test[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ValueError(f"HealthCheck test: {list(self.test)!r} is not allowed; allowed: ['CMD', ...] or ['CMD-SHELL', '...']")


# Health checks of the images above, the catalog's and the platform's alike.
def minio_health() -> Health:
    """MinIO's own readiness probe (its image ships ``mc``)."""
    return Health(("CMD", "mc", "ready", "local"))


def keycloak_health() -> Health:
    """Keycloak's image has no curl: ask the management port's readiness endpoint over bash's /dev/tcp."""
    probe = (
        "exec 3<>/dev/tcp/127.0.0.1/9000 && "
        "printf 'GET /health/ready HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && "
        "grep -q '\"status\": \"UP\"' <&3"
    )
    return Health(("CMD-SHELL", probe), start_period="60s")


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``"did you mean 'fleet_max'? "`` for the closest of a closed set's names, or ``""``: every refusal of
    a name from a closed set (services, parameters, stacks, settings) says it before what is allowed."""
    match = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {match[0]!r}? " if match else ""


# The AWS APIs the aws target's resources and data sources call (the provider's service keys).
AWS_TARGET_SERVICES = ("ec2", "iam", "ssm", "sts")


def aws_endpoint_environment(endpoint: str | None) -> dict[str, str]:
    """The variables that send every API the ``aws`` target calls to ``endpoint`` (an emulated cloud), for
    the engine's environment: ``AWS_ENDPOINT_URL_<SERVICE>``, which the AWS provider (and the SDKs) read
    (the provider's "Custom Service Endpoints" guide); none without an endpoint."""
    if not endpoint:
        return {}
    return {f"AWS_ENDPOINT_URL_{service.upper()}": endpoint for service in AWS_TARGET_SERVICES}


# ---- EC2 user data: what the constructs write and what readers of a synthesized stack read back ----------

USER_DATA_LIMIT = 16 * 1024  # bytes EC2 accepts before base64


def user_data(text: str, *, owner: str) -> str:
    """Base64 user data for ``user_data_base64`` and launch templates: the text as it is, or gzip-compressed
    when it is over EC2's 16 KB (cloud-init reads gzip-compressed user data as what it holds); refused,
    naming ``owner``, when even compressed it is over."""
    raw = text.encode()
    if len(raw) > USER_DATA_LIMIT:
        raw = gzip.compress(raw, compresslevel=9, mtime=0)  # mtime 0: the same text gives the same bytes
        if len(raw) > USER_DATA_LIMIT:
            raise ValueError(f"{owner} user data: {len(raw)} bytes compressed is not allowed; allowed: {USER_DATA_LIMIT} bytes at most (EC2)")
    return base64.b64encode(raw).decode()


def user_data_text(encoded: str) -> str:
    """The text of :func:`user_data`'s output (for readers of synthesized stacks)."""
    raw = base64.b64decode(encoded)
    return (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode()
