"""The service catalog: one class per deployable service, each realized by a ``docker`` or an ``aws`` target.

    from spawnit.services import get_service, ServiceStack
    service = get_service("postgresql")
    ServiceStack(app, service=service, parameters=service.parse({"target": "docker"}), client="acme", instance="db")
"""

from .base import (
    TARGETS,
    CatalogService,
    ContainerSpec,
    Health,
    ImageBuild,
    ParameterError,
    ServiceParameters,
    ServicePort,
    all_services,
    catalog_document,
    get_service,
    instance_stack_name,
)

__all__ = [
    "TARGETS",
    "CatalogService",
    "ContainerSpec",
    "Health",
    "ImageBuild",
    "ParameterError",
    "ServiceParameters",
    "ServicePort",
    "ServiceStack",
    "all_services",
    "catalog_document",
    "get_service",
    "instance_stack_name",
]


def __getattr__(name: str):  # the stack class needs cdktf: import it only when asked
    if name == "ServiceStack":
        from .stack import ServiceStack

        return ServiceStack
    raise AttributeError(name)
