"""Test hosts for the boot scripts: network namespaces joined by veth links, stand-ins for the Amazon
Linux tools the scripts call, a fake instance metadata service, and a runner that keeps each script
in a mount namespace of its own so that nothing it writes reaches the machine running the tests.

Everything made here is removed on exit, also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AWS_CLI = ROOT / ".venv-awscli" / "bin" / "aws"
# Tools of Amazon Linux the scripts call that must not act on the test machine: each stand-in
# records its arguments in $STANDIN_LOG and succeeds.
AMAZON_LINUX_TOOLS = ("dnf", "rpm", "systemctl", "service", "ansible-playbook", "docker")


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def stand_ins(folder: Path, log: Path) -> Path:
    """A folder of stand-ins for :data:`AMAZON_LINUX_TOOLS`, to put first on PATH."""
    folder.mkdir(parents=True, exist_ok=True)
    for tool in AMAZON_LINUX_TOOLS:
        path = folder / tool
        path.write_text(f'#!/bin/sh\necho "{tool} $*" >>"{log}"\nexit 0\n')
        path.chmod(0o755)
    return folder


def run_isolated(
    command: list[str],
    *,
    env: dict[str, str],
    netns: str | None = None,
    private: tuple[str, ...] = ("/var/log",),
    files: dict[str, Path] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """Run ``command`` in a mount namespace of its own with an empty tmpfs over each of ``private``
    (the system folders the script writes) and each of ``files`` (system file -> a test file) bound
    over, inside network namespace ``netns`` if given."""
    # Absolute paths: the PATH given to the script may put stand-ins first. Each mount is checked.
    steps = [f"/usr/bin/mount -t tmpfs spawnit-test {path} && /usr/bin/mountpoint -q {path}" for path in private]
    steps += [f"/usr/bin/mount --bind {source} {target}" for target, source in (files or {}).items()]
    mounts = " && ".join(steps) or "true"
    isolated = ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/bash", "-c", f'{mounts} && exec "$@"', "isolated", *command]
    if netns:
        isolated = ["ip", "netns", "exec", netns, *isolated]
    return subprocess.run(isolated, env=env, capture_output=True, text=True, timeout=timeout)


def aws_cli_environment(endpoint: str) -> dict[str, str]:
    if not AWS_CLI.exists():
        raise AssertionError(f"{AWS_CLI} is missing: the test set-up installs it (scripts/test, requirements-awscli.txt)")
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-3",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    }


class FakeEc2Host(ThreadingHTTPServer):
    """What an EC2 instance sees: the instance metadata service (IMDSv2: token, instance id, the
    interface id of each MAC) and the EC2 API, which it forwards to the emulator with one rule of
    AWS's that the emulator lacks: an interface attached to an instance cannot be attached to
    another (error ``InvalidNetworkInterface.InUse``, as in the EC2 API reference's error codes).

    ``instance_id`` is the instance the host plays; ``macs`` maps a MAC to the interface id it
    carries, the NAT interface only while the emulator shows it attached to this instance.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, emulator: str, ec2) -> None:
        super().__init__(address, _Handler)
        self.emulator = emulator
        self.ec2 = ec2
        self.instance_id = ""
        self.primary_macs: dict[str, str] = {}
        self.attachable_macs: dict[str, str] = {}  # mac -> ENI id, seen only while attached here
        self.metadata: dict[str, str] = {}  # other items (public-hostname, public-ipv4...)
        self.attach_calls = 0
        self.refused_attach_calls = 0

    def interface_of(self, mac: str) -> str | None:
        if mac in self.primary_macs:
            return self.primary_macs[mac]
        eni_id = self.attachable_macs.get(mac)
        if eni_id and self.attached_to(eni_id) == self.instance_id:
            return eni_id
        return None

    def attached_to(self, eni_id: str) -> str | None:
        interface = self.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]
        return interface.get("Attachment", {}).get("InstanceId")

    @property
    def url(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeEc2Host

    def log_message(self, *args) -> None:
        pass

    def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self) -> None:
        if self.path == "/latest/api/token":
            self._send(200, b"test-token")
        else:
            self._send(404, b"")

    def do_GET(self) -> None:
        if not self.path.startswith("/latest/meta-data/"):
            return self._forward(b"")
        if self.headers.get("X-aws-ec2-metadata-token") != "test-token":
            return self._send(401, b"")
        item = self.path.removeprefix("/latest/meta-data/")
        if item == "instance-id":
            return self._send(200, self.server.instance_id.encode())
        if item in self.server.metadata:
            return self._send(200, self.server.metadata[item].encode())
        parts = item.split("/")
        if len(parts) == 5 and parts[:3] == ["network", "interfaces", "macs"] and parts[4] == "interface-id":
            interface = self.server.interface_of(parts[3])
            return self._send(200, interface.encode()) if interface else self._send(404, b"")
        self._send(404, b"")

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        form = urllib.parse.parse_qs(body.decode())
        if form.get("Action") == ["AttachNetworkInterface"]:
            self.server.attach_calls += 1
            owner = self.server.attached_to(form["NetworkInterfaceId"][0])
            if owner:
                self.server.refused_attach_calls += 1
                error = (
                    '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InvalidNetworkInterface.InUse</Code>'
                    f"<Message>Interface: [{form['NetworkInterfaceId'][0]}] in use.</Message></Error></Errors><RequestID>1</RequestID></Response>"
                )
                return self._send(400, error.encode(), "text/xml")
        self._forward(body)

    def _forward(self, body: bytes) -> None:
        headers = {key: value for key, value in self.headers.items() if key.lower() not in ("host", "content-length")}
        request = urllib.request.Request(self.server.emulator + self.path, data=body or None, headers=headers, method=self.command)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                self._send(response.status, response.read(), response.headers.get("Content-Type", "text/xml"))
        except urllib.error.HTTPError as error:
            self._send(error.code, error.read(), error.headers.get("Content-Type", "text/xml"))


@contextlib.contextmanager
def serving(server: ThreadingHTTPServer):
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


ECHO_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Echo(BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.client_address[0].encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args): pass
HTTPServer((sys.argv[1], int(sys.argv[2])), Echo).serve_forever()
"""


def echo_server(netns: str, address: str, port: int) -> subprocess.Popen:
    """An HTTP server in ``netns`` answering every GET with the caller's source address."""
    return subprocess.Popen(["ip", "netns", "exec", netns, "python3", "-c", ECHO_SERVER, address, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def mac_of(netns: str, device: str) -> str:
    links = json.loads(ip("-n", netns, "-j", "link", "show", "dev", device).stdout)
    return links[0]["address"]
