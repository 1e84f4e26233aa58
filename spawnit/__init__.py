"""SpawnIt: infrastructure as code for everyone.

- :mod:`spawnit.constructs`: typed AWS constructs (Network, NatInstance, LoadBalancer, AppFleet,
  Database, Cache, MediaBucket, DevBox, Alerts, OffHours);
- :mod:`spawnit.stacks`: one stack class per environment (DevStack, PreprodStack, ProdStack), the
  platform's, the local environment's and Spotilike's, each application's typed settings beside its stacks
  (:mod:`spawnit.stacks.environment_settings`: the EnvironmentSpec and its overrides);
- :mod:`spawnit.applications`: the applications the command line knows, third parties' included;
- :mod:`spawnit.config`: the configuration file and variables every application's settings come from;
- ``spawnit`` / ``python -m spawnit``: synth, list, plan, deploy, destroy, bootstrap.
"""

__version__ = "0.1.0"

import os as _os

# The jsii kernel runs on the machine's Node 20, past its end of life (said in the README): not a banner on
# every process, which cdktf-cli would show as an error (it shows what an app writes on stderr so).
_os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from . import bindings as _bindings  # noqa: E402 - after the setting above

_bindings.install()  # the provider bindings load their submodules on first use (spawnit/bindings.py)
