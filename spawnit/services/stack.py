"""One stack per service instance, named after its client and instance."""

from __future__ import annotations

import re

from cdktf import TerraformStack
from constructs import Construct

from .base import CatalogService, ParameterError, ServiceParameters
from .targets import Target

NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")


def instance_stack_name(client: str, instance: str) -> str:
    for field, value in (("client", client), ("instance", instance)):
        if not NAME.match(value):
            raise ParameterError(f"{field}: {value!r} is not allowed; allowed: 2-32 lowercase letters, digits and '-', starting with a letter")
    return f"{client}-{instance}"


class ServiceStack(TerraformStack):
    """A catalog service's instance, realized by the target its parameters name."""

    def __init__(self, scope: Construct, *, service: type[CatalogService], parameters: ServiceParameters, client: str, instance: str) -> None:
        name = instance_stack_name(client, instance)
        super().__init__(scope, name)
        self.service = service(parameters)
        self.parameters = parameters
        self.target = Target.registry[parameters.target]()
        self.containers = self.service.containers()
        self.target.realize(self, name, self.containers, parameters)
