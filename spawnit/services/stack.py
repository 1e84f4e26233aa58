"""One stack per service instance, named after its client and instance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cdktf import LocalBackend, S3BackendEndpointConfig
from constructs import Construct

from ..constructs import SpawnitStack
from .base import CatalogService, ServiceParameters, check_fit, instance_stack_name
from .targets import Target, TargetSettings


@dataclass(frozen=True)
class InstanceState:
    """Where an instance's OpenTofu state lives: an S3 key (AWS or an S3-compatible endpoint such as
    MinIO, locked by a lock file beside it) or a local file."""

    kind: Literal["s3", "local"]
    key: str = ""
    bucket: str = ""
    region: str = "us-east-1"
    endpoint: str | None = None
    path: str = ""

    def apply(self, stack: SpawnitStack) -> None:
        if self.kind == "local":
            LocalBackend(stack, path=self.path)
            return
        stack.s3_state(
            bucket=self.bucket,
            key=self.key,
            region=self.region,
            encrypt=self.endpoint is None,  # SSE needs KMS on MinIO; AWS S3 encrypts
            use_path_style=self.endpoint is not None,
            endpoints=S3BackendEndpointConfig(s3=self.endpoint) if self.endpoint else None,
            skip_credentials_validation=self.endpoint is not None,
            skip_region_validation=self.endpoint is not None,
            skip_requesting_account_id=self.endpoint is not None,
            skip_metadata_api_check=self.endpoint is not None,
            skip_s3_checksum=self.endpoint is not None,
        )


class ServiceStack(SpawnitStack):
    """A catalog service's instance, realized by the target its parameters name.

    ``target_settings`` are the operator's (an emulated AWS endpoint); ``provider_versions`` the version
    constraint per provider source when a site's mirror holds other approved versions than the bindings'."""

    def __init__(
        self,
        scope: Construct,
        *,
        service: type[CatalogService],
        parameters: ServiceParameters,
        client: str,
        instance: str,
        state: InstanceState | None = None,
        target_settings: TargetSettings | None = None,
        provider_versions: Mapping[str, str] | None = None,
    ) -> None:
        name = instance_stack_name(client, instance)
        super().__init__(scope, name, provider_versions=provider_versions)
        if state is not None:
            state.apply(self)
        self.service = service(parameters)
        self.parameters = parameters
        self.target = Target.registry[parameters.target](target_settings)
        self.containers = self.service.containers()
        check_fit(service, parameters, self.containers)
        self.target.realize(self, name, self.containers, parameters, service.hints(parameters))
