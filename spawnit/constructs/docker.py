"""Docker constructs: provider, network, named volume, and a service (image + container)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cdktf_cdktf_provider_docker.container import (
    Container,
    ContainerHealthcheck,
    ContainerLabels,
    ContainerNetworksAdvanced,
    ContainerPorts,
    ContainerUpload,
    ContainerVolumes,
)
from cdktf_cdktf_provider_docker.image import Image, ImageBuild
from cdktf_cdktf_provider_docker.network import Network as DockerNetworkResource
from cdktf_cdktf_provider_docker.network import NetworkLabels
from cdktf_cdktf_provider_docker.provider import DockerProvider
from cdktf_cdktf_provider_docker.volume import Volume, VolumeLabels
from constructs import Construct

from ..shared import Health

DOCKER_HOST_SCHEMES = ("unix://", "ssh://", "tcp://", "npipe://")
IMAGE_REFERENCE = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9._-]{1,128})?(@sha256:[a-f0-9]{64})?$")
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,199}$")
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
MANAGED_LABEL = "managed-by"


def docker_provider(scope: Construct, *, host: str = "unix:///var/run/docker.sock", id: str = "docker") -> DockerProvider:
    """The Docker provider for a stack: the local socket by default, or an ``ssh://`` / ``tcp://`` remote host."""
    if not host.startswith(DOCKER_HOST_SCHEMES):
        raise ValueError(f"docker host: {host!r} is not allowed; allowed: a URL starting with {', '.join(DOCKER_HOST_SCHEMES)}")
    return DockerProvider(scope, id, host=host)


_LITERAL_TEMPLATE = re.compile(r"([$%])\{(?!TfToken\[)")


def literal(text: str) -> str:
    """Escape Terraform template markers in literal text (``${VAR}`` stays ``${VAR}`` in the container);
    references to other resources (cdktf tokens) are kept."""
    return _LITERAL_TEMPLATE.sub(r"\1\1{", text)


def _check_name(owner: str, name: str) -> None:
    if not NAME.match(name):
        raise ValueError(f"{owner} name: {name!r} is not allowed; allowed: letters, digits, '_', '.', '-' (up to 200, starting with a letter or digit)")


class DockerNetwork(Construct):
    """A user-defined bridge network: containers on it reach each other by name and alias."""

    def __init__(self, scope: Construct, id: str, *, name: str, internal: bool = False, labels: Mapping[str, str] | None = None) -> None:
        super().__init__(scope, id)
        _check_name("DockerNetwork", name)
        self.resource = DockerNetworkResource(
            self, "network", name=name, driver="bridge", internal=internal, labels=_labels(NetworkLabels, labels)
        )
        self.name = self.resource.name


class DockerVolume(Construct):
    """A named volume that outlives its containers (data survives a redeploy)."""

    def __init__(self, scope: Construct, id: str, *, name: str, labels: Mapping[str, str] | None = None) -> None:
        super().__init__(scope, id)
        _check_name("DockerVolume", name)
        self.resource = Volume(self, "volume", name=name, labels=_labels(VolumeLabels, labels))
        self.name = self.resource.name


@dataclass(frozen=True)
class PortMapping:
    """``internal`` container port published on ``external`` of the host, on ``host_ip`` (loopback by default)."""

    internal: int
    external: int | None = None
    protocol: str = "tcp"
    host_ip: str = "127.0.0.1"

    def __post_init__(self) -> None:
        for label, port in (("internal", self.internal), ("external", self.external)):
            if port is not None and not 1 <= port <= 65535:
                raise ValueError(f"PortMapping {label}: {port} is not allowed; allowed: 1 to 65535")
        if self.protocol not in ("tcp", "udp"):
            raise ValueError(f"PortMapping protocol: {self.protocol!r} is not allowed; allowed: tcp, udp")


@dataclass(frozen=True)
class Mount:
    """A named volume (``volume``: a DockerVolume or a volume name) mounted at ``path``."""

    volume: DockerVolume | str
    path: str
    read_only: bool = False


@dataclass(frozen=True)
class HostMount:
    """A file or folder of the Docker host (``host_path``, absolute) mounted at ``path``: a bind mount, such
    as the engine's own socket for a container that drives the engine."""

    host_path: str
    path: str
    read_only: bool = False

    def __post_init__(self) -> None:
        if not self.host_path.startswith("/"):
            raise ValueError(f"HostMount host_path: {self.host_path!r} is not allowed; allowed: an absolute path on the Docker host")


HealthCheck = Health  # one definition for constructs and catalog services


@dataclass(frozen=True)
class ImageBuildSpec:
    """An image built from a Dockerfile, tagged ``tag``; ``context`` is relative to the stack's folder when OpenTofu runs."""

    context: str
    tag: str
    dockerfile: str = "Dockerfile"
    build_args: Mapping[str, str] = field(default_factory=dict)


def built_image(scope: Construct, id: str, spec: ImageBuildSpec) -> Image:
    """An image built from a Dockerfile, once: several services can run it (pass it as their ``image``)."""
    return Image(
        scope,
        id,
        name=spec.tag,
        keep_locally=True,
        build_attribute=ImageBuild(context=spec.context, dockerfile=spec.dockerfile, build_args=dict(spec.build_args) or None),
    )


class DockerService(Construct):
    """One container and its image, with everything a service usually needs.

    ``image`` is a reference by tag (``minio/minio:RELEASE...``) or digest
    (``...@sha256:<64 hex>``), an :class:`ImageBuildSpec`, or an image another service also runs
    (:func:`built_image`). ``files`` are uploaded
    into the container before it starts (path -> content). With a health check,
    creation waits until the container is healthy, so services that
    ``depend_on`` this one start after it is ready, not after a sleep.
    """

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        name: str,
        image: str | ImageBuildSpec | Image,
        network: DockerNetwork | str | None = None,
        aliases: Sequence[str] = (),
        ports: Sequence[PortMapping] = (),
        env: Mapping[str, str] | None = None,
        mounts: Sequence[Mount | HostMount] = (),
        group_add: Sequence[str] = (),
        command: Sequence[str] | None = None,
        restart: str = "unless-stopped",
        health: HealthCheck | None = None,
        labels: Mapping[str, str] | None = None,
        memory_mb: int | None = None,
        cpus: float | None = None,
        files: Mapping[str, str] | None = None,
        depends_on: Sequence[DockerService] = (),
        wait_timeout_seconds: int = 180,
    ) -> None:
        super().__init__(scope, id)
        _check_name("DockerService", name)
        if restart not in RESTART_POLICIES:
            raise ValueError(f"DockerService restart: {restart!r} is not allowed; allowed: {', '.join(RESTART_POLICIES)}")
        if memory_mb is not None and memory_mb < 6:
            raise ValueError(f"DockerService memory_mb: {memory_mb} is not allowed; allowed: 6 or more (Docker's minimum)")
        if cpus is not None and cpus <= 0:
            raise ValueError(f"DockerService cpus: {cpus} is not allowed; allowed: a positive number")
        for path in files or {}:
            if not path.startswith("/"):
                raise ValueError(f"DockerService files: {path!r} is not allowed; allowed: absolute paths in the container")
        self.name = name
        self.image = self._image(image)
        env = env or {}
        self.container = Container(
            self,
            "container",
            name=name,
            image=self.image.image_id,
            restart=restart,
            must_run=True,
            command=list(command) if command else None,
            env=[f"{key}={literal(value)}" for key, value in sorted(env.items())] or None,
            ports=[ContainerPorts(internal=p.internal, external=p.external, protocol=p.protocol, ip=p.host_ip) for p in ports] or None,
            volumes=[
                ContainerVolumes(host_path=m.host_path, container_path=m.path, read_only=m.read_only)
                if isinstance(m, HostMount)
                else ContainerVolumes(volume_name=m.volume if isinstance(m.volume, str) else m.volume.name, container_path=m.path, read_only=m.read_only)
                for m in mounts
            ]
            or None,
            group_add=list(group_add) or None,
            networks_advanced=[ContainerNetworksAdvanced(name=network if isinstance(network, str) else network.name, aliases=list(aliases) or None)]
            if network is not None
            else None,
            healthcheck=ContainerHealthcheck(
                test=list(health.test), interval=health.interval, timeout=health.timeout, retries=health.retries, start_period=health.start_period
            )
            if health
            else None,
            wait=health is not None,
            wait_timeout=wait_timeout_seconds if health else None,
            labels=_labels(ContainerLabels, labels),
            memory=memory_mb,
            cpus=str(cpus) if cpus is not None else None,
            upload=[ContainerUpload(file=path, content=literal(content)) for path, content in sorted((files or {}).items())] or None,
            log_opts={"max-size": "10m", "max-file": "3"},
            depends_on=[service.container for service in depends_on] or None,
        )

    def _image(self, image: str | ImageBuildSpec | Image) -> Image:
        if isinstance(image, Image):
            return image
        if isinstance(image, ImageBuildSpec):
            return built_image(self, "image", image)
        if not IMAGE_REFERENCE.match(image):
            raise ValueError(f"DockerService image: {image!r} is not allowed; allowed: name:tag or name@sha256:<64 hex digits>")
        return Image(self, "image", name=image, keep_locally=True)


def _labels(kind, labels: Mapping[str, str] | None):  # noqa: ANN001, ANN202 - one helper for three label classes
    merged = {MANAGED_LABEL: "spawnit", **(labels or {})}
    return [kind(label=key, value=value) for key, value in sorted(merged.items())]
