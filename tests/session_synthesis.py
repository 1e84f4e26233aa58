"""The session's one synthesis: every default stack and the variants the tests read, in one App. Run as a
program (``python session_synthesis.py OUTDIR``) by the ``outdir`` fixture, once per test run: the first
worker that needs it makes it, in a process of its own, and every worker reads the folder. Importing this
module loads no cdktf (the suite's controller imports it through conftest)."""

from __future__ import annotations

import sys
from pathlib import Path

TEST_STACKS = ("two-workloads",)  # made by the session for tests only, never by main.py

# Variants synthesized beside the defaults, in the same App: stack id -> (environment, overrides)
VARIANTS = {
    "prod-gateway": ("prod", {"nat": "gateway"}),
    "prod-custom": (
        "prod",
        {
            "alert_emails": ["ops@example.com", "finance@example.com"],
            "allowed_http_cidrs": ["173.245.48.0/20", "103.21.244.0/22"],
            "monthly_budget_usd": 450,
            "media_endpoint": "https://account.r2.cloudflarestorage.com",
            "state_backend": "local",
            "cloudflare_zone": None,  # no edge: HTTPS with its own certificate, the CIDRs above
            "publishable_key": "pk_" + "0123456789abcdef" * 4,
        },
    ),
    "prod-http-only": ("prod", {"cloudflare_zone": None, "domain": None, "origin_http_only": True}),
    "dev-ssh": ("dev", {"ssh_cidrs": ["203.0.113.7/32"]}),
    "preprod-with-alerts": ("preprod", {"alerts": True, "alert_emails": ["ops@example.com"]}),
    "prod-with-nat-eip": ("prod", {"nat_elastic_ip": True, "state_backend": "local"}),
}

# Catalog instances beyond the defaults (client acme): stack name -> (service, parameters).
PLATFORM_VARIANTS = {
    "platform-instances-scaled": {"api_replicas": 3, "workers": 2},  # API replicas behind the Caddy front
    # workers that deploy to all three targets
    "platform-instances-targets": {"proxmox_endpoint": "https://pve.example.com:8006/", "proxmox_token_id": "spawnit@pve!deploy", "docker_socket_group": 999},
}

CATALOG_VARIANTS = {
    "acme-pg-lxc": ("postgresql", {"target": "proxmox", "proxmox_kind": "lxc", "proxmox_node": "pve1", "proxmox_vlan": 30}),
    "acme-django": (
        "webapp",
        {
            "target": "proxmox",
            "git_url": "https://git.example.com/acme/shop.git",
            "framework": "django",
            "entrypoint": "shop.wsgi:application",
            "proxmox_cores": 4,
            "proxmox_memory_mb": 4096,
            "proxmox_disk_gb": 40,
            "proxmox_bridge": "vmbr1",
        },
    ),
    "acme-express": ("webapp", {"target": "proxmox", "git_url": "https://git.example.com/acme/api.git", "framework": "express", "ref": "v2.1.0"}),
    "acme-laravel": ("webapp", {"target": "proxmox", "git_url": "https://git.example.com/acme/crm.git", "framework": "laravel", "port": 8081}),
}


def default_spec(name: str, **overrides: object):
    """A spec from embedded defaults only: no config file, no SPAWNIT_* variables of the machine."""
    from spawnit.stacks.environment_settings import load_spec

    return load_spec(name, config_file=None, environ={}, overrides=overrides)


def synthesize(outdir: Path) -> None:
    from spawnit.services import ServiceStack, get_service
    from spawnit.stacks import ENVIRONMENT_STACKS, build_app
    from spawnit.stacks.platform import PlatformInstancesStack
    from spawnit.stacks.platform_settings import PlatformSettings

    app = build_app(outdir, specs={name: default_spec(name) for name in ENVIRONMENT_STACKS})
    for stack_id, (environment, overrides) in VARIANTS.items():
        ENVIRONMENT_STACKS[environment](app, default_spec(environment, **overrides), id=stack_id)
    for stack_id, (name, values) in CATALOG_VARIANTS.items():
        service = get_service(name)
        ServiceStack(app, service=service, parameters=service.checked(values), client="acme", instance=stack_id.removeprefix("acme-"))
    for stack_id, values in PLATFORM_VARIANTS.items():
        PlatformInstancesStack(
            app, PlatformSettings(**values), network=app.node.find_child("platform-network"), volumes=app.node.find_child("platform-volumes"), id=stack_id
        )
    _two_workloads(app)
    app.synth()


def _two_workloads(app) -> None:
    """Three workloads in one stack, two on one cluster and one on another: the provider is per cluster."""
    from cdktf_cdktf_provider_aws.provider import AwsProvider

    from spawnit.constructs import SpawnitStack
    from spawnit.constructs.kubernetes import KubernetesWorkload

    stack = SpawnitStack(app, "two-workloads")
    AwsProvider(stack, "aws", region="eu-west-3")
    KubernetesWorkload(stack, "web", cluster_name="shop", name="web", image="nginx:1.27")
    KubernetesWorkload(stack, "admin", cluster_name="shop", name="admin", image="nginx:1.27")
    KubernetesWorkload(stack, "tools", cluster_name="ops", name="tools", image="nginx:1.27")


if __name__ == "__main__":
    synthesize(Path(sys.argv[1]))
