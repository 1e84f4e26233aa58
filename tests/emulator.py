"""The tests' AWS: moto's server on 127.0.0.1, with the few changes the tests need, each said here.

moto runs in the test process (a thread), so the changes are patches of its classes, made once:

- **MonitorInstances / UnmonitorInstances** (EC2 detailed monitoring) are not implemented by moto 5.2
  (it raises ``NotImplementedError``: a 500 the AWS provider retries for ever). The catalog's
  ``aws`` target turns detailed monitoring on, as AWS documents (``MonitorInstances`` sets
  ``Monitoring.State`` to ``pending``, then ``enabled``), so the emulator answers it and records the
  state on the instance, which ``DescribeInstances`` then reports.
- **Conditional PUT** (``If-None-Match: *``): moto checks that the key is absent, then stores it,
  with no lock between; two concurrent writers can both win (seen: 2 rounds in 300 of 20
  concurrent conditional PUTs). S3 makes the condition atomic (S3 user guide, "conditional
  writes"), and the store and the S3 backend's lock file rely on that; the emulator serialises
  conditional PUTs so that it honours the condition too.
- **An instance's security groups**: launched with a network interface (as the AWS provider does
  for ``associate_public_ip_address``), moto keeps the groups on the interface only and answers
  ``DescribeInstances`` with ``SecurityGroups: []``; AWS lists the primary interface's groups there,
  and the provider reads ``vpc_security_group_ids`` from it (without this, every plan after an
  apply shows the group being added again). The emulator copies them onto the instance.
- **AWS managed IAM policies** (``AmazonSSMManagedInstanceCore``) exist in AWS; moto loads them only
  with ``MOTO_IAM_LOAD_MANAGED_POLICIES=true``, read when its IAM backend is made: the emulator sets it
  and resets the backends.
- **Slow calls on demand** (:meth:`Emulator.slow`): an EC2 action can be made to wait, so that a test
  can act while an apply is in flight (cancel it, kill its worker).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Iterator

import boto3

_patched = False
_conditional_puts = threading.Lock()
_delays: dict[str, float] = {}  # EC2 action -> seconds it waits before answering
_entered: dict[str, threading.Event] = {}


def _patch_moto() -> None:
    global _patched
    if _patched:
        return
    from moto.core.responses import ActionResult
    from moto.ec2.responses import monitoring
    from moto.ec2.responses.instances import InstanceResponse
    from moto.s3.responses import S3Response

    def set_monitoring(self, state: str) -> ActionResult:  # noqa: ANN001
        self.error_on_dryrun()
        items = []
        for instance_id in self._get_param("InstanceIds", []):
            self.ec2_backend.get_instance(instance_id).monitoring_state = state
            items.append({"InstanceId": instance_id, "Monitoring": {"State": state}})
        return ActionResult({"InstanceMonitorings": items})

    monitoring.Monitoring.monitor_instances = lambda self: set_monitoring(self, "enabled")
    monitoring.Monitoring.unmonitor_instances = lambda self: set_monitoring(self, "disabled")

    put_object = S3Response.put_object

    def atomic_put_object(self):  # noqa: ANN001, ANN202
        if self.headers.get("If-None-Match") == "*":
            with _conditional_puts:
                return put_object(self)
        return put_object(self)

    S3Response.put_object = atomic_put_object

    run_instances = InstanceResponse.run_instances

    def run_instances_with_groups(self):  # noqa: ANN001, ANN202
        result = run_instances(self)
        for instance in self.ec2_backend.all_instances():
            primary = instance.nics.get(0)
            if not instance.security_groups and primary is not None:
                instance.security_groups = list(primary._group_set)
        return result

    InstanceResponse.run_instances = run_instances_with_groups

    for action in ("run_instances", "terminate_instances"):
        original = getattr(InstanceResponse, action)

        def delayed(self, _original=original, _action=action):  # noqa: ANN001, ANN202
            if _delays.get(_action):
                _entered.setdefault(_action, threading.Event()).set()
                time.sleep(_delays[_action])
            return _original(self)

        setattr(InstanceResponse, action, delayed)
    _patched = True


class Emulator:
    """A moto server for one test module: its endpoint, boto3 clients, and the switches above."""

    def __init__(self, port: int, region: str = "us-east-1") -> None:
        from moto.server import ThreadedMotoServer

        os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        _patch_moto()
        self.region = region
        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.server.start()
        self.endpoint = f"http://127.0.0.1:{port}"
        # moto's backends are one per process, shared by every moto server the session started: begin
        # empty, and with the IAM backend made anew now that it must load AWS's managed policies.
        self.reset()

    def client(self, service: str, region: str | None = None):  # noqa: ANN201
        return boto3.client(
            service, endpoint_url=self.endpoint, region_name=region or self.region, aws_access_key_id="testing", aws_secret_access_key="testing"
        )

    def reset(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/moto-api/reset", method="POST")).close()

    @contextlib.contextmanager
    def slow(self, action: str, seconds: float) -> Iterator[threading.Event]:
        """While inside, the EC2 ``action`` (``run_instances``, ``terminate_instances``) waits ``seconds``
        before answering; yields an event set once a call has started waiting."""
        entered = _entered[action] = threading.Event()
        _delays[action] = seconds
        try:
            yield entered
        finally:
            _delays.pop(action, None)

    def stop(self) -> None:
        self.server.stop()
