"""How jobs run the engine: which binary, how providers are installed, and what each job's process sees.

Settings (environment of ``spawnit serve`` and ``spawnit worker``; each checked at start, a bad one is
an error naming the variable, its value and what is allowed):

- ``SPAWNIT_TOFU``: the engine binary (default: ``tofu``, else ``terraform``, on PATH).
- ``SPAWNIT_PLUGIN_CACHE``: one provider plugin cache for every job (``plugin_cache_dir``; default
  ``<data dir>/plugin-cache``): a provider is unpacked once per host, not once per job.
- ``SPAWNIT_PROVIDER_MIRROR``: where providers come from instead of their registries: an absolute
  folder (``filesystem_mirror``, the layout ``terraform providers mirror`` writes) or an ``https://`` URL
  (``network_mirror``), for air-gapped sites. Written into the CLI configuration each job uses.
- ``SPAWNIT_PROVIDER_VERSIONS``: ``source=constraint`` pairs separated by ``;``
  (``hashicorp/aws=5.100.0``), for a site whose mirror holds another approved version than the
  bindings' (default: the bindings' versions).
- ``SPAWNIT_AWS_ENDPOINT``: one URL for every AWS API of the ``aws`` target (LocalStack, moto);
  never set by default.
- ``SPAWNIT_S3_ACCESS_KEY_ID`` / ``SPAWNIT_S3_SECRET_ACCESS_KEY``: the store's own credentials (default:
  the server's own ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``). The S3 backend of every job gets
  them in a backend configuration file; the job's process never sees them, so a provider signs with
  its target's credentials only.

A job's environment is the server's, less every ``SPAWNIT_*`` setting, any ``TF_VAR_*`` or
``TF_CLI_CONFIG_FILE`` of the server's own and every variable a provider reads credentials from
(``AWS_*``, ``DOCKER_*``, ``PROXMOX_VE_*``, ``SSH_AUTH_SOCK``), plus the job's CLI configuration, its
target's credentials (:mod:`.credentials`) and the instance's secrets as ``TF_VAR_<name>``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..shared import aws_endpoint_environment
from ..tofu import engine_environment
from .credentials import store_credentials_fallback, without_provider_variables

SOURCE = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}/[a-z0-9][a-z0-9_-]{0,63}$")
CONSTRAINT = re.compile(r"^[0-9A-Za-z.,~<>=!\s-]{1,64}$")
ENDPOINT = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?(/\S*)?$")
_SERVER_ONLY = ("SPAWNIT_", "TF_VAR_")
_SERVER_ONLY_NAMES = ("TF_CLI_CONFIG_FILE", "TF_PLUGIN_CACHE_DIR")


class ToolchainError(ValueError):
    """A setting of the engine's toolchain is invalid: the message names the variable, the value and what is allowed."""


def parse_provider_versions(text: str) -> dict[str, str]:
    """``hashicorp/aws=5.100.0; kreuzwerker/docker=~> 3.6`` -> {source: constraint}."""
    versions: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(";"))):
        source, _, constraint = item.partition("=")
        source, constraint = source.strip(), constraint.strip()
        if not SOURCE.fullmatch(source) or not constraint or not CONSTRAINT.fullmatch(constraint):
            raise ToolchainError(
                f"SPAWNIT_PROVIDER_VERSIONS: {item!r} is not allowed; allowed: NAMESPACE/TYPE=CONSTRAINT pairs separated by ';', "
                "for example 'hashicorp/aws=5.100.0; kreuzwerker/docker=~> 3.6'"
            )
        versions[source] = constraint
    return versions


@dataclass(frozen=True)
class Toolchain:
    """The engine and its settings, as every job of this process uses them."""

    plugin_cache: Path
    provider_mirror: str | None = None
    provider_versions: dict[str, str] = field(default_factory=dict)
    aws_endpoint: str | None = None
    store_credentials: tuple[str, str, str | None] | None = None  # key, secret, session token

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], data_dir: Path) -> Toolchain:
        mirror = environ.get("SPAWNIT_PROVIDER_MIRROR") or None
        if mirror is not None and not (mirror.startswith("https://") or (Path(mirror).is_absolute() and Path(mirror).is_dir())):
            raise ToolchainError(
                f"SPAWNIT_PROVIDER_MIRROR: {mirror!r} is not allowed; allowed: an existing absolute folder (a filesystem mirror) or an https:// URL (a network mirror)"
            )
        endpoint = environ.get("SPAWNIT_AWS_ENDPOINT") or None
        if endpoint is not None and not ENDPOINT.fullmatch(endpoint):
            raise ToolchainError(f"SPAWNIT_AWS_ENDPOINT: {endpoint!r} is not allowed; allowed: an http:// or https:// URL, e.g. http://127.0.0.1:4566")
        key, secret = environ.get("SPAWNIT_S3_ACCESS_KEY_ID"), environ.get("SPAWNIT_S3_SECRET_ACCESS_KEY")
        if bool(key) != bool(secret):
            missing = "SPAWNIT_S3_SECRET_ACCESS_KEY" if key else "SPAWNIT_S3_ACCESS_KEY_ID"
            raise ToolchainError(f"{missing}: not set; allowed: both SPAWNIT_S3_ACCESS_KEY_ID and SPAWNIT_S3_SECRET_ACCESS_KEY, or neither")
        return cls(
            plugin_cache=Path(environ.get("SPAWNIT_PLUGIN_CACHE") or data_dir / "plugin-cache").resolve(),
            provider_mirror=mirror,
            provider_versions=parse_provider_versions(environ.get("SPAWNIT_PROVIDER_VERSIONS", "")),
            aws_endpoint=endpoint,
            store_credentials=(key, secret, None) if key and secret else store_credentials_fallback(environ),
        )

    def cli_config(self) -> str:
        """The CLI configuration of a job (HCL; JSON strings are valid HCL strings)."""
        lines = [f"plugin_cache_dir = {json.dumps(str(self.plugin_cache))}"]
        if self.provider_mirror:
            kind, key = ("network_mirror", "url") if self.provider_mirror.startswith("https://") else ("filesystem_mirror", "path")
            lines += ["provider_installation {", f"  {kind} {{", f"    {key} = {json.dumps(self.provider_mirror)}", "  }", "}"]
        return "\n".join(lines) + "\n"

    def backend_config(self) -> str | None:
        """The S3 backend's credentials (the store's), as a ``-backend-config`` file, or None."""
        if self.store_credentials is None:
            return None
        key, secret, token = self.store_credentials
        return f"access_key = {json.dumps(key)}\nsecret_key = {json.dumps(secret)}\n" + (f"token = {json.dumps(token)}\n" if token else "")

    def target_environment(self, target: str) -> dict[str, str]:
        """What a job on ``target`` adds to its environment for where the target answers: an ``aws``
        job's emulated endpoint (SPAWNIT_AWS_ENDPOINT) as the provider's endpoint variables."""
        return aws_endpoint_environment(self.aws_endpoint) if target == "aws" else {}

    def synth_options(self) -> dict[str, Any]:
        """What the synthesis of an instance needs from these settings."""
        return {"target_settings": {"aws_endpoint": self.aws_endpoint}, "provider_versions": self.provider_versions}

    def environment(self, server: Mapping[str, str], cli_config: Path, secrets: Mapping[str, str], target: Mapping[str, str]) -> dict[str, str]:
        """A job's process environment: the server's without its own settings nor any provider's
        credentials, the job's CLI configuration and plugin cache, the ``target``'s credentials
        (:meth:`.credentials.TargetAccess.for_job`), the instance's secrets as ``TF_VAR_<name>`` and the
        engine's Go runtime settings (:func:`spawnit.tofu.engine_environment`)."""
        environ = {key: value for key, value in without_provider_variables(server).items() if not key.startswith(_SERVER_ONLY) and key not in _SERVER_ONLY_NAMES}
        environ |= dict(target)
        environ |= {"TF_IN_AUTOMATION": "1", "TF_INPUT": "0", "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": str(cli_config)}
        environ |= {f"TF_VAR_{name}": value for name, value in secrets.items()}
        return engine_environment(environ)

    def prepare(self) -> None:
        self.plugin_cache.mkdir(parents=True, exist_ok=True)

