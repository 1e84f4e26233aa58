"""The application a host runs: images, compose files, Caddyfile, and the boot that starts them."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..shared import GREENLEAF_BACKEND_IMAGE, GREENLEAF_CADDY_IMAGE, GREENLEAF_STOREFRONT_IMAGE, user_data
from ._common import PER_BOOT_DIR, asset, cloud_config, shell_assignments

APP_DIR = "/opt/spawnit/app"
BOOT_SCRIPT = "spawnit-app.sh"  # cloud-init runs it at every boot from PER_BOOT_DIR
# AWS's bundle of every RDS certificate authority (RDS user guide, "Using SSL/TLS to encrypt a connection").
RDS_CA_URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
DATA_DIR = "/srv/spawnit-data"
# Re-reads the secrets: RDS rotates its managed master password every 7 days by default.
REFRESH_UNITS = {
    "/etc/systemd/system/spawnit-refresh.service": (
        "[Unit]\nDescription=Re-read the app's secrets; recreate the containers when they changed\n"
        "After=docker.service\n\n[Service]\nType=oneshot\n"
        f"ExecStart={PER_BOOT_DIR}/{BOOT_SCRIPT} refresh\n"
    ),
    "/etc/systemd/system/spawnit-refresh.timer": (
        "[Unit]\nDescription=Re-read the app's secrets every 5 minutes\n\n"
        "[Timer]\nOnBootSec=10min\nOnUnitActiveSec=5min\nRandomizedDelaySec=30\n\n[Install]\nWantedBy=timers.target\n"
    ),
}


def _bundled(*names: str) -> dict[str, str]:
    return {name: asset(f"app/{name}") for name in names}


@dataclass(frozen=True)
class AppRelease:
    """What an application host runs. The defaults are the bundled GreenLeaf stack
    (Medusa backend :9000, storefront :8000, Caddy on :80)."""

    backend_image: str = GREENLEAF_BACKEND_IMAGE
    storefront_image: str = GREENLEAF_STOREFRONT_IMAGE
    caddy_image: str = GREENLEAF_CADDY_IMAGE
    publishable_key: str = ""  # the storefront's Medusa publishable API key (public by design)
    files: Mapping[str, str] = field(default_factory=lambda: _bundled("docker-compose.yml", "Caddyfile"))
    compose_files: tuple[str, ...] = ("docker-compose.yml",)

    def with_dev_services(self) -> AppRelease:
        """The same release plus PostgreSQL and Redis containers (the dev compose override)."""
        files = {**self.files, **_bundled("docker-compose.dev.yml")}
        return dataclasses.replace(self, files=files, compose_files=(*self.compose_files, "docker-compose.dev.yml"))


@dataclass(frozen=True)
class AppSettings:
    """Boot-time values of an application host; they may hold Terraform references.

    Empty database and app secrets mean "local": the boot script then generates
    secrets on the host and the dev compose override provides PostgreSQL and Redis.
    """

    db_secret_arn: str = ""
    db_host: str = ""
    db_port: str = "5432"
    db_name: str = "medusa"
    redis_url: str = "redis://redis:6379"
    app_secret_arn: str = ""
    s3: Mapping[str, str] = field(default_factory=lambda: {"S3_BUCKET": "", "S3_REGION": "", "S3_ENDPOINT": "", "S3_URL": "", "S3_KEYS_SECRET_ARN": ""})
    public_url: str = ""  # the site's address (https://shop.example), for uploads' links when there is no bucket

    def as_shell(self) -> dict[str, str]:
        return {
            "DB_SECRET_ARN": self.db_secret_arn,
            "DB_HOST": self.db_host,
            "DB_PORT": str(self.db_port),
            "DB_NAME": self.db_name,
            "REDIS_URL": self.redis_url,
            "APP_SECRET_ARN": self.app_secret_arn,
            "PUBLIC_URL": self.public_url,
            **self.s3,
        }


def app_user_data(
    release: AppRelease,
    *,
    region: str,
    settings_parameter: str | None = None,
    settings: AppSettings | None = None,
    data_device: str | None = None,
) -> str:
    """cloud-config for an application host: Ansible playbook, app files, and the boot script,
    which reads its settings, reads secrets from Secrets Manager, writes ``.env`` and starts the stack.

    Settings known only at apply time (endpoints, secret ARNs) live in the SSM
    parameter ``settings_parameter``, read at every boot; literal ``settings``
    are written into the document instead (a host whose settings are all known).
    ``data_device``: a block device the host mounts at ``/srv/spawnit-data`` for the data it must
    keep (the dev box's database and generated secrets).
    """
    if (settings_parameter is None) == (settings is None):
        raise ValueError("app_user_data: give exactly one of settings_parameter and settings")
    missing = set(release.compose_files) - set(release.files)
    if missing:
        raise ValueError(f"AppRelease compose_files: {sorted(missing)} are not among files {sorted(release.files)}")
    boot = {
        "AWS_REGION": region,
        "SETTINGS_PARAMETER": settings_parameter or "",
        "BACKEND_IMAGE": release.backend_image,
        "STOREFRONT_IMAGE": release.storefront_image,
        "CADDY_IMAGE": release.caddy_image,
        "MEDUSA_PUBLISHABLE_KEY": release.publishable_key,
        "COMPOSE_FILES": " ".join(release.compose_files),
        "RDS_CA_URL": RDS_CA_URL,
    }
    if data_device:
        boot |= {"DATA_DEVICE": data_device, "DATA_DIR": DATA_DIR}
    files = {
        "/opt/spawnit/boot.conf": shell_assignments(boot),
        "/opt/spawnit/ansible/playbook.yml": asset("ansible/playbook.yml"),
        **{f"{APP_DIR}/{name}": content for name, content in release.files.items()},
        **REFRESH_UNITS,
    }
    if settings is not None:
        files["/opt/spawnit/app.conf"] = shell_assignments(settings.as_shell())
    document = cloud_config(files=files, boot_script=(BOOT_SCRIPT, asset("scripts/app-boot.sh")))
    user_data(document, owner="AppRelease files:")  # refused here, by the release, when even compressed it is too big
    return document
