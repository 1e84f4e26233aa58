"""SpawnIt: infrastructure as code for everyone.

- :mod:`spawnit.constructs`: typed AWS constructs (Network, NatInstance, LoadBalancer, AppFleet,
  Database, Cache, MediaBucket, DevBox, Alerts, OffHours);
- :mod:`spawnit.stacks`: one stack class per environment (DevStack, PreprodStack, ProdStack);
- :mod:`spawnit.config`: the typed, validated EnvironmentSpec and its overrides;
- ``spawnit`` / ``python -m spawnit``: synth, list, plan, deploy, destroy, bootstrap.
"""

__version__ = "0.1.0"

from . import bindings as _bindings

_bindings.install()  # the provider bindings load their submodules on first use (spawnit/bindings.py)
