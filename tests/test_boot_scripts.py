"""The two boot scripts, run for real: the NAT between three hosts in network namespaces, the app
host against the AWS emulator with the real AWS CLI. Amazon Linux tools that would act on this
machine (dnf, rpm, systemctl, service, docker, ansible-playbook) are stand-ins that record their
arguments; each script runs in a mount namespace of its own with private mounts over what it writes."""

from __future__ import annotations

import datetime
import json
import os
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import boto3
import pytest
import yaml
from hosts import FakeEc2Host, aws_cli_environment, echo_server, ip, mac_of, run_isolated, serving, stand_ins
from spawnit.shared import user_data_text
from stackjson import StackJson, written_files

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "spawnit" / "assets" / "scripts"
VPC_CIDR, APP_ADDRESS, NAT_PRIVATE_ADDRESS = "10.66.0.0/16", "10.66.0.10", "10.66.0.5"
NAT_PUBLIC_ADDRESS, INTERNET_ADDRESS, ECHO_PORT = "198.51.100.2", "198.51.100.1", 8080
MANAGEMENT_HOST, MANAGEMENT_NAT = "169.254.77.1", "169.254.77.2"


def user_data_files(stack: StackJson, template_name: str) -> dict[str, str]:
    """The files a host's cloud-config writes, by path, from the synthesized launch template."""
    return written_files(stack.named("aws_launch_template", "name", template_name)[1])


def lay_out(files: dict[str, str], root: Path) -> None:
    """Write the files cloud-init puts under /opt/spawnit below ``root`` instead (the scripts' SPAWNIT_ROOT)."""
    for path, content in files.items():
        if path.startswith("/opt/spawnit/"):
            target = root / path.removeprefix("/opt/spawnit/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)


def _wait_for(condition, timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


# ---------------------------------------------------------------- the NAT, between three hosts


class NatLab:
    """An app host, a NAT host and an "internet" host in network namespaces, the NAT's fixed
    interface in the AWS emulator, and a fake EC2 host (metadata service + EC2 API) reachable from
    the NAT host over a link-local management link."""

    def __init__(self, tmp_path: Path, emulator: str) -> None:
        tag = f"spw{os.getpid() % 100000}"
        self.app, self.nat, self.internet = f"{tag}a", f"{tag}n", f"{tag}i"
        self.tmp = tmp_path
        self.log = tmp_path / "nat.log"
        self.tools = tmp_path / "tools.log"
        self.ec2 = boto3.client("ec2", endpoint_url=emulator, region_name="eu-west-3", aws_access_key_id="testing", aws_secret_access_key="testing")
        self.host: FakeEc2Host | None = None  # listens on the management link, once built

    def build(self) -> None:
        for name in (self.app, self.nat, self.internet):
            ip("netns", "add", name)
            ip("-n", name, "link", "set", "lo", "up")
        # app host <-> NAT's fixed interface (no address until the NAT attaches it)
        ip("link", "add", "app0", "netns", self.app, "type", "veth", "peer", "name", "eni1", "netns", self.nat)
        # NAT's default interface <-> the internet
        ip("link", "add", "eth0", "netns", self.nat, "type", "veth", "peer", "name", "inet0", "netns", self.internet)
        # management link: the NAT host reaches the fake metadata service and EC2 API
        ip("link", "add", f"{self.nat}m", "type", "veth", "peer", "name", "mgmt0", "netns", self.nat)
        ip("addr", "add", f"{MANAGEMENT_HOST}/30", "dev", f"{self.nat}m")
        ip("link", "set", f"{self.nat}m", "up")
        ip("-n", self.nat, "addr", "add", f"{MANAGEMENT_NAT}/30", "dev", "mgmt0")
        ip("-n", self.app, "addr", "add", f"{APP_ADDRESS}/24", "dev", "app0")
        ip("-n", self.nat, "addr", "add", f"{NAT_PUBLIC_ADDRESS}/24", "dev", "eth0")
        ip("-n", self.internet, "addr", "add", f"{INTERNET_ADDRESS}/24", "dev", "inet0")
        for namespace, device in ((self.app, "app0"), (self.nat, "eni1"), (self.nat, "eth0"), (self.nat, "mgmt0"), (self.internet, "inet0")):
            ip("-n", namespace, "link", "set", device, "up")
        ip("-n", self.nat, "route", "add", "default", "via", INTERNET_ADDRESS)
        ip("-n", self.app, "route", "add", "default", "via", NAT_PRIVATE_ADDRESS)

    def destroy(self) -> None:
        for name in (self.app, self.nat, self.internet):
            ip("netns", "del", name, check=False)
        ip("link", "del", f"{self.nat}m", check=False)

    def write_config(self, nat_name: str, attempts: int, elastic_ip: bool = False) -> dict[str, str]:
        (self.tmp / "nat.conf").write_text(
            f"NAT_NAME='{nat_name}'\nVPC_CIDR='{VPC_CIDR}'\nSUBNET_ROUTER='{APP_ADDRESS}'\nAWS_REGION='eu-west-3'\n"
            + ("NAT_EIP_TAGGED='1'\n" if elastic_ip else "")
        )
        tools = stand_ins(self.tmp / "bin", self.tools)
        return {
            **aws_cli_environment(self.host.url),
            "PATH": f"{tools}:{ROOT / '.venv-awscli' / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
            "SPAWNIT_ROOT": str(self.tmp),
            "SPAWNIT_LOG": str(self.log),
            "IMDS_ENDPOINT": self.host.url,
            "NAT_ATTACH_ATTEMPTS": str(attempts),
            "RETRY_DELAY_SECONDS": "1",
        }

    def boot(self, environ: dict[str, str]) -> subprocess.CompletedProcess:
        return run_isolated(["bash", str(SCRIPTS / "nat-boot.sh")], env=environ, netns=self.nat, private=("/var/log", "/etc/sysctl.d"))

    def address_on_attach(self, eni_id: str, instance_id: str) -> threading.Thread:
        """Like the VPC's DHCP: the fixed interface gets its address once attached to ``instance_id``."""

        def assign() -> None:
            _wait_for(lambda: self.host.attached_to(eni_id) == instance_id, timeout=120, what="the attachment")
            time.sleep(1)  # the interface appears before its address: the script must wait for it
            ip("-n", self.nat, "addr", "replace", f"{NAT_PRIVATE_ADDRESS}/24", "dev", "eni1")

        thread = threading.Thread(target=assign, daemon=True)
        thread.start()
        return thread

    def reset_nat_host(self) -> None:
        """A fresh instance: no address on the fixed interface, no forwarding, no NAT rules."""
        ip("-n", self.nat, "addr", "flush", "dev", "eni1")
        subprocess.run(["ip", "netns", "exec", self.nat, "sysctl", "-q", "-w", "net.ipv4.ip_forward=0"], check=True)
        subprocess.run(["ip", "netns", "exec", self.nat, "iptables", "-t", "nat", "-F"], check=True)

    def fetch_from_app(self) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["ip", "netns", "exec", self.app, "curl", "-sf", "--max-time", "5", f"http://{INTERNET_ADDRESS}:{ECHO_PORT}/"],
            capture_output=True,
            text=True,
        )


@pytest.fixture
def nat_lab(tmp_path, aws_account):
    lab = NatLab(tmp_path, aws_account)
    try:
        lab.build()
        # the fake host listens on the management link's address, which exists once the link is built
        with serving(FakeEc2Host((MANAGEMENT_HOST, 0), emulator=aws_account, ec2=lab.ec2)) as host:
            lab.host = host
            echo = echo_server(lab.internet, INTERNET_ADDRESS, ECHO_PORT)
            try:
                yield lab
            finally:
                echo.kill()
                echo.wait()
    finally:
        lab.destroy()


def _instance(ec2, subnet: str) -> str:
    image = ec2.describe_images()["Images"][0]["ImageId"]
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, SubnetId=subnet)["Instances"][0]["InstanceId"]


def _nat_interface(lab: NatLab, name: str) -> tuple[str, str]:
    vpc = lab.ec2.create_vpc(CidrBlock=VPC_CIDR)["Vpc"]["VpcId"]
    subnet = lab.ec2.create_subnet(VpcId=vpc, CidrBlock="10.66.0.0/24")["Subnet"]["SubnetId"]
    eni = lab.ec2.create_network_interface(
        SubnetId=subnet, TagSpecifications=[{"ResourceType": "network-interface", "Tags": [{"Key": "spawnit:nat", "Value": name}]}]
    )["NetworkInterface"]["NetworkInterfaceId"]
    lab.host.attachable_macs = {mac_of(lab.nat, "eni1"): eni}
    return subnet, eni


def _play_instance(lab: NatLab, instance_id: str) -> str:
    """The NAT host becomes ``instance_id``: its default interface is that instance's primary interface."""
    (instance,) = lab.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"]
    primary = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    lab.host.instance_id = instance_id
    lab.host.primary_macs = {mac_of(lab.nat, "eth0"): primary}
    return primary


def test_the_app_host_reaches_the_internet_through_the_nat_masqueraded(nat_lab):
    subnet, eni = _nat_interface(nat_lab, "greenleaf-prod-nat-a")
    first = _instance(nat_lab.ec2, subnet)
    _play_instance(nat_lab, first)
    assert nat_lab.fetch_from_app().returncode != 0, "the app host must not reach the internet before the NAT boots"
    environ = nat_lab.write_config("greenleaf-prod-nat-a", attempts=5)
    nat_lab.address_on_attach(eni, first)
    result = nat_lab.boot(environ)
    log = nat_lab.log.read_text()
    assert result.returncode == 0, log + result.stderr
    answer = nat_lab.fetch_from_app()
    assert answer.returncode == 0, log
    assert answer.stdout == NAT_PUBLIC_ADDRESS, "the internet host must see the NAT's address, not the app's"
    assert "ready: eni1 -> eth0" in log and "did not come up" not in log
    tools = nat_lab.tools.read_text()
    assert "systemctl enable iptables" in tools and "service iptables save" in tools


def test_a_replacement_instance_takes_the_route_over_after_the_old_attachment_fails_twice(nat_lab):
    subnet, eni = _nat_interface(nat_lab, "greenleaf-prod-nat-a")
    old, new = _instance(nat_lab.ec2, subnet), _instance(nat_lab.ec2, subnet)
    nat_lab.ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=old, DeviceIndex=1)  # the failed instance still holds it
    nat_lab.reset_nat_host()
    _play_instance(nat_lab, new)
    environ = nat_lab.write_config("greenleaf-prod-nat-a", attempts=10)

    def old_instance_terminates() -> None:  # the group terminates the old instance: its attachment goes
        _wait_for(lambda: nat_lab.host.refused_attach_calls >= 2, timeout=120, what="two refused attach calls")
        attachment = nat_lab.ec2.describe_network_interfaces(NetworkInterfaceIds=[eni])["NetworkInterfaces"][0]["Attachment"]["AttachmentId"]
        nat_lab.ec2.detach_network_interface(AttachmentId=attachment)

    threading.Thread(target=old_instance_terminates, daemon=True).start()
    nat_lab.address_on_attach(eni, new)
    result = nat_lab.boot(environ)
    log = nat_lab.log.read_text()
    assert result.returncode == 0, log + result.stderr
    assert nat_lab.host.refused_attach_calls >= 2 and "attempt 2 of 10 failed" in log
    assert nat_lab.host.attached_to(eni) == new
    assert nat_lab.fetch_from_app().stdout == NAT_PUBLIC_ADDRESS


def test_an_attach_that_never_succeeds_exits_non_zero_saying_why(nat_lab):
    subnet, eni = _nat_interface(nat_lab, "greenleaf-prod-nat-a")
    holder, booting = _instance(nat_lab.ec2, subnet), _instance(nat_lab.ec2, subnet)
    nat_lab.ec2.attach_network_interface(NetworkInterfaceId=eni, InstanceId=holder, DeviceIndex=1)
    _play_instance(nat_lab, booting)
    result = nat_lab.boot(nat_lab.write_config("greenleaf-prod-nat-a", attempts=3))
    log = nat_lab.log.read_text()
    assert result.returncode != 0
    assert f"FAILED: could not attach {eni} to {booting} after 3 attempts" in log
    assert nat_lab.host.attach_calls == 3


def test_with_an_elastic_ip_the_nat_takes_its_zones_fixed_egress_address(nat_lab):
    subnet, eni = _nat_interface(nat_lab, "greenleaf-prod-nat-a")
    instance = _instance(nat_lab.ec2, subnet)
    primary = _play_instance(nat_lab, instance)
    allocation = nat_lab.ec2.allocate_address(
        Domain="vpc", TagSpecifications=[{"ResourceType": "elastic-ip", "Tags": [{"Key": "spawnit:nat", "Value": "greenleaf-prod-nat-a"}]}]
    )["AllocationId"]
    nat_lab.address_on_attach(eni, instance)
    result = nat_lab.boot(nat_lab.write_config("greenleaf-prod-nat-a", attempts=5, elastic_ip=True))
    log = nat_lab.log.read_text()
    assert result.returncode == 0, log + result.stderr
    (address,) = nat_lab.ec2.describe_addresses(AllocationIds=[allocation])["Addresses"]
    assert address.get("NetworkInterfaceId") == primary and f"egress address is Elastic IP {allocation}" in log
    assert nat_lab.fetch_from_app().stdout == NAT_PUBLIC_ADDRESS


def test_the_elastic_ip_option_tags_one_address_per_zone_and_lets_the_nat_take_it(prod_with_nat_eip, prod):
    addresses = prod_with_nat_eip.resources("aws_eip").values()
    assert sorted(a["tags"]["spawnit:nat"] for a in addresses) == ["greenleaf-prod-nat-eu-west-3a", "greenleaf-prod-nat-eu-west-3b"]
    assert prod.count("aws_eip") == 0
    for zone in ("eu-west-3a", "eu-west-3b"):
        assert "NAT_EIP_TAGGED='1'" in user_data_files(prod_with_nat_eip, f"greenleaf-prod-nat-{zone}")["/opt/spawnit/nat.conf"]
    policies = [json.loads(p["policy"]) for p in prod_with_nat_eip.resources("aws_iam_role_policy").values() if "-nat-" in p["name"]]
    assert len(policies) == 2 and all({"Effect": "Allow", "Action": "ec2:AssociateAddress", "Resource": "*"} in p["Statement"] for p in policies)


def test_a_nat_without_its_tagged_interface_fails_saying_so(nat_lab):
    subnet, _ = _nat_interface(nat_lab, "greenleaf-prod-nat-a")
    _play_instance(nat_lab, _instance(nat_lab.ec2, subnet))
    result = nat_lab.boot(nat_lab.write_config("greenleaf-prod-nat-b", attempts=2))
    assert result.returncode != 0
    assert "FAILED: no network interface tagged spawnit:nat=greenleaf-prod-nat-b" in nat_lab.log.read_text()


def test_the_nat_user_data_runs_this_script_with_its_settings(prod):
    for zone in ("eu-west-3a", "eu-west-3b"):
        files = user_data_files(prod, f"greenleaf-prod-nat-{zone}")
        assert files["/var/lib/cloud/scripts/per-boot/spawnit-nat.sh"] == (SCRIPTS / "nat-boot.sh").read_text()
        assert f"NAT_NAME='greenleaf-prod-nat-{zone}'\n" in files["/opt/spawnit/nat.conf"]


# ---------------------------------------------------------------- the app host, against the emulator


def _ca_bundle() -> str:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Test RDS root CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


class AppHost:
    """The prod launch template's files laid out under a folder, run by the real boot script."""

    def __init__(self, tmp_path: Path, endpoint: str, prod: StackJson) -> None:
        self.root = tmp_path / "opt-spawnit"
        self.log = tmp_path / "user-data.log"
        self.tools = tmp_path / "tools.log"
        self.files = user_data_files(prod, "greenleaf-prod-app")
        lay_out(self.files, self.root)
        self.bundle = tmp_path / "global-bundle.pem"
        self.bundle.write_text(_ca_bundle())
        with (self.root / "boot.conf").open("a") as conf:  # AWS's bundle URL, served from a local file
            conf.write(f"RDS_CA_URL='file://{self.bundle}'\n")
        tools = stand_ins(tmp_path / "bin", self.tools)
        self.environ = {
            **aws_cli_environment(endpoint),
            "PATH": f"{tools}:{ROOT / '.venv-awscli' / 'bin'}:/usr/sbin:/usr/bin:/sbin:/bin",
            "SPAWNIT_ROOT": str(self.root),
            "SPAWNIT_LOG": str(self.log),
            "RETRY_DELAY_SECONDS": "1",
        }

    def run(self, mode: str = "boot") -> subprocess.CompletedProcess:
        script = self.files["/var/lib/cloud/scripts/per-boot/spawnit-app.sh"]
        path = self.root.parent / "spawnit-app.sh"
        path.write_text(script)
        return run_isolated(["bash", str(path), mode], env=self.environ)

    def env(self) -> dict[str, str]:
        return dict(line.split("=", 1) for line in (self.root / "app" / ".env").read_text().splitlines())


@pytest.fixture
def app_host(tmp_path, aws_account, prod):
    """Settings parameter, database and app secrets in the emulator, under the names prod's boot reads."""
    settings = prod.only("aws_ssm_parameter")
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-3")
    secrets = session.client("secretsmanager", endpoint_url=aws_account)
    db = secrets.create_secret(Name="rds!db-test", SecretString=json.dumps({"username": "medusa", "password": "p@ss:w/rd?&#1"}))
    app = secrets.create_secret(Name="greenleaf-prod-app", SecretString=json.dumps({"jwt_secret": "j" * 64, "cookie_secret": "c" * 64}))
    keys = secrets.create_secret(Name="greenleaf-prod/media-keys", SecretString=json.dumps({"access_key_id": "r2-key-id", "secret_access_key": "r2/secret+key"}))
    value = (
        f"DB_SECRET_ARN='{db['ARN']}'\nDB_HOST='greenleaf-prod-db.abc.eu-west-3.rds.amazonaws.com'\nDB_PORT='5432'\nDB_NAME='medusa'\n"
        f"REDIS_URL='rediss://redis.example:6379'\nAPP_SECRET_ARN='{app['ARN']}'\n"
        "S3_BUCKET='greenleaf-prod-media'\nS3_REGION='auto'\nS3_ENDPOINT='https://0123abcd.r2.cloudflarestorage.com'\n"
        f"S3_URL='https://media.greenleaf.example'\nS3_KEYS_SECRET_ARN='{keys['ARN']}'\n"
    )
    session.client("ssm", endpoint_url=aws_account).put_parameter(Name=settings["name"], Value=value, Type="String")
    host = AppHost(tmp_path, aws_account, prod)
    host.db_secret, host.secrets = db["ARN"], secrets
    return host


def test_the_app_boot_writes_env_0600_with_the_url_encoded_password_over_verified_tls(app_host):
    result = app_host.run()
    assert result.returncode == 0, app_host.log.read_text() + result.stderr
    env_file = app_host.root / "app" / ".env"
    assert env_file.stat().st_mode & 0o777 == 0o600
    env = app_host.env()
    password = urllib.parse.quote("p@ss:w/rd?&#1", safe="")
    assert env["DATABASE_URL"] == f"postgres://medusa:{password}@greenleaf-prod-db.abc.eu-west-3.rds.amazonaws.com:5432/medusa?sslmode=verify-full"
    assert env["JWT_SECRET"] == "j" * 64 and env["REDIS_URL"] == "rediss://redis.example:6379"


def test_the_app_gets_r2s_key_pair_from_its_secret_for_media_uploads(app_host):
    assert app_host.run().returncode == 0, app_host.log.read_text()
    env = app_host.env()
    assert (env["S3_ACCESS_KEY_ID"], env["S3_SECRET_ACCESS_KEY"]) == ("r2-key-id", "r2/secret+key")
    assert (env["S3_ENDPOINT"], env["S3_URL"], env["S3_REGION"]) == ("https://0123abcd.r2.cloudflarestorage.com", "https://media.greenleaf.example", "auto")
    assert "r2/secret+key" not in app_host.log.read_text()  # never logged


def test_the_storefront_gets_the_publishable_key_and_none_of_the_backends_secrets(app_host):
    key = "pk_" + "ab" * 32
    with (app_host.root / "boot.conf").open("a") as conf:  # as a spec's publishable_key writes it
        conf.write(f"MEDUSA_PUBLISHABLE_KEY='{key}'\n")
    assert app_host.run().returncode == 0, app_host.log.read_text()
    assert app_host.env()["MEDUSA_PUBLISHABLE_KEY"] == key
    storefront = yaml.safe_load(app_host.files["/opt/spawnit/app/docker-compose.yml"])["services"]["storefront"]
    assert "env_file" not in storefront  # DATABASE_URL and the secrets stay in the backend's environment
    assert storefront["environment"] == {"MEDUSA_BACKEND_URL": "http://backend:9000", "MEDUSA_PUBLISHABLE_KEY": "${MEDUSA_PUBLISHABLE_KEY:-}"}


def test_the_backend_trusts_the_rds_certificate_authorities(app_host):
    assert app_host.run().returncode == 0, app_host.log.read_text()
    env = app_host.env()
    bundle = app_host.root / "app" / "rds-ca.pem"
    assert bundle.read_text() == app_host.bundle.read_text() and bundle.stat().st_mode & 0o777 == 0o644
    compose = yaml.safe_load(app_host.files["/opt/spawnit/app/docker-compose.yml"])
    assert f"./rds-ca.pem:{env['NODE_EXTRA_CA_CERTS']}:ro" in compose["services"]["backend"]["volumes"]


def test_the_app_re_reads_its_database_password_after_rotation(app_host):
    assert app_host.run().returncode == 0, app_host.log.read_text()
    started = app_host.tools.read_text()
    assert "docker compose -f docker-compose.yml pull --quiet" in started and "docker compose -f docker-compose.yml up -d --remove-orphans" in started
    assert "systemctl enable --now spawnit-refresh.timer" in started
    app_host.tools.write_text("")
    app_host.secrets.put_secret_value(SecretId=app_host.db_secret, SecretString=json.dumps({"username": "medusa", "password": "rotated-42"}))

    result = app_host.run("refresh")
    assert result.returncode == 0, app_host.log.read_text()
    assert ":rotated-42@" in app_host.env()["DATABASE_URL"]
    assert app_host.tools.read_text().strip() == "docker compose -f docker-compose.yml up -d --remove-orphans"

    app_host.tools.write_text("")
    assert app_host.run("refresh").returncode == 0
    assert app_host.tools.read_text() == "", "nothing changed: nothing restarts"
    assert "secrets unchanged" in app_host.log.read_text()


def test_a_timer_re_reads_the_secrets_every_five_minutes(app_host):
    service = app_host.files["/etc/systemd/system/spawnit-refresh.service"]
    timer = app_host.files["/etc/systemd/system/spawnit-refresh.timer"]
    assert "ExecStart=/var/lib/cloud/scripts/per-boot/spawnit-app.sh refresh" in service
    assert "OnUnitActiveSec=5min" in timer and "WantedBy=timers.target" in timer


def test_a_boot_without_its_settings_parameter_fails_and_writes_no_env(app_host, aws_account):
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-3")
    for parameter in session.client("ssm", endpoint_url=aws_account).describe_parameters()["Parameters"]:
        session.client("ssm", endpoint_url=aws_account).delete_parameter(Name=parameter["Name"])
    result = app_host.run()
    assert result.returncode != 0
    assert not (app_host.root / "app" / ".env").exists()
    assert "failed after 5 attempts: aws ssm get-parameter" in app_host.log.read_text()


# ---------------------------------------------------------------- the dev box's data volume


@pytest.fixture
def data_volume(tmp_path):
    """A blank block device standing for the dev box's EBS data volume (a loop device on a sparse file)."""
    image = tmp_path / "data-volume.img"
    with image.open("wb") as file:
        file.truncate(512 * 1024 * 1024)  # XFS wants 300 MB at least; sparse, so nothing is written
    device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True, capture_output=True, text=True).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "--detach", device], check=False)


def test_the_dev_database_and_its_password_survive_a_new_instance(tmp_path, dev, data_volume):
    """Replacing the dev box (new user data, new instance type) gives it a new root volume; the data
    volume, formatted once, keeps PostgreSQL's files and the password they were created with."""
    files = written_files(dev.only("aws_instance"))
    boots = []
    for instance in ("first", "replacement"):
        root = tmp_path / instance / "opt-spawnit"
        lay_out(files, root)
        boot_conf = (root / "boot.conf").read_text()
        assert "DATA_DEVICE='/dev/sdf'" in boot_conf
        (root / "boot.conf").write_text(boot_conf.replace("DATA_DEVICE='/dev/sdf'", f"DATA_DEVICE='{data_volume}'"))
        script = tmp_path / instance / "spawnit-app.sh"
        script.write_text(files["/var/lib/cloud/scripts/per-boot/spawnit-app.sh"])
        fstab = tmp_path / instance / "fstab"
        fstab.write_text("")
        log = tmp_path / instance / "user-data.log"
        tools = stand_ins(tmp_path / instance / "bin", tmp_path / instance / "tools.log")
        environ = {"PATH": f"{tools}:/usr/sbin:/usr/bin:/sbin:/bin", "SPAWNIT_ROOT": str(root), "SPAWNIT_LOG": str(log), "RETRY_DELAY_SECONDS": "1"}
        result = run_isolated(["bash", str(script)], env=environ, private=("/var/log", "/srv"), files={"/etc/fstab": fstab})
        assert result.returncode == 0, log.read_text() + result.stderr
        assert f"{data_volume} /srv/spawnit-data xfs defaults,nofail 0 2" in fstab.read_text()
        boots.append((dict(line.split("=", 1) for line in (root / "app" / ".env").read_text().splitlines()), log.read_text()))
    (first, first_log), (second, second_log) = boots
    assert first["DATA_DIR"] == second["DATA_DIR"] == "/srv/spawnit-data"
    assert "@postgres:5432/medusa" in first["DATABASE_URL"]
    assert second["DATABASE_URL"] == first["DATABASE_URL"] and second["JWT_SECRET"] == first["JWT_SECRET"]
    assert "formatting the new data volume" in first_log and "formatting" not in second_log
    # The backend's uploads (no bucket on the dev box) are on the data volume, writable by its image's user.
    override = yaml.safe_load(files["/opt/spawnit/app/docker-compose.dev.yml"])
    assert "${DATA_DIR:?set DATA_DIR in .env}/media:/server/static" in override["services"]["backend"]["volumes"]
    mounted = tmp_path / "data-volume"
    mounted.mkdir()
    subprocess.run(["mount", "-o", "ro", data_volume, str(mounted)], check=True)
    try:
        media = (mounted / "media").stat()
        assert (media.st_uid, media.st_gid, media.st_mode & 0o777) == (1000, 1000, 0o755)
    finally:
        subprocess.run(["umount", str(mounted)], check=True)


def _dev_boot(tmp_path: Path, dev: StackJson, name: str, environ: dict[str, str]) -> tuple[dict[str, str], str]:
    """The dev box's boot script, its data volume left out (its own test above mounts one)."""
    files = written_files(dev.only("aws_instance"))
    root = tmp_path / name / "opt-spawnit"
    lay_out(files, root)
    (root / "boot.conf").write_text((root / "boot.conf").read_text().replace("DATA_DEVICE='/dev/sdf'", "DATA_DEVICE=''"))
    script = tmp_path / name / "spawnit-app.sh"
    script.write_text(files["/var/lib/cloud/scripts/per-boot/spawnit-app.sh"])
    log = tmp_path / name / "user-data.log"
    tools = stand_ins(tmp_path / name / "bin", tmp_path / name / "tools.log")
    base = {"PATH": f"{tools}:/usr/sbin:/usr/bin:/sbin:/bin", "SPAWNIT_ROOT": str(root), "SPAWNIT_LOG": str(log), "RETRY_DELAY_SECONDS": "1"}
    result = run_isolated(["bash", str(script)], env={**base, **environ})
    assert result.returncode == 0, log.read_text() + result.stderr
    return dict(line.split("=", 1) for line in (root / "app" / ".env").read_text().splitlines()), log.read_text()


def test_the_dev_box_links_its_uploads_to_its_public_address_from_the_instance_metadata(tmp_path, dev):
    """Without a bucket Medusa writes upload links under MEDUSA_FILE_URL, else http://localhost/static: a
    browser elsewhere never loads them. The boot reads the box's public name (IMDSv2) from a fake metadata service."""
    with serving(FakeEc2Host(("127.0.0.1", 0), emulator="", ec2=None)) as imds:
        imds.metadata["public-hostname"] = "ec2-203-0-113-7.eu-west-3.compute.amazonaws.com"
        env, _ = _dev_boot(tmp_path, dev, "named", {"IMDS_ENDPOINT": imds.url})
        assert env["MEDUSA_FILE_URL"] == "http://ec2-203-0-113-7.eu-west-3.compute.amazonaws.com/static"
        del imds.metadata["public-hostname"]  # a VPC without DNS hostnames: the public IPv4
        imds.metadata["public-ipv4"] = "203.0.113.7"
        env, _ = _dev_boot(tmp_path, dev, "address", {"IMDS_ENDPOINT": imds.url})
        assert env["MEDUSA_FILE_URL"] == "http://203.0.113.7/static"


def test_without_an_answer_from_the_metadata_the_dev_box_says_so_and_the_links_stay_local(tmp_path, dev):
    env, log = _dev_boot(tmp_path, dev, "silent", {"IMDS_ENDPOINT": f"http://127.0.0.1:{free_port_here()}"})
    assert env["MEDUSA_FILE_URL"] == "" and "no public address from the instance metadata" in log


def free_port_here() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_user_data_over_ec2s_16_kb_is_compressed_and_cloud_init_reads_it_as_its_cloud_config(dev, tmp_path):
    """The dev box's document (the app, the dev services, the boot script) is over the 16 KB EC2 accepts:
    it goes gzip-compressed, which Debian's real cloud-init turns back into the same cloud-config."""
    import base64

    encoded = dev.only("aws_instance")["user_data_base64"]
    raw = base64.b64decode(encoded)
    assert raw[:2] == b"\x1f\x8b" and len(raw) <= 16 * 1024
    (tmp_path / "user-data").write_bytes(raw)
    program = (
        "import sys; from cloudinit import user_data\n"
        "message = user_data.UserDataProcessor({}).process(open(sys.argv[1], 'rb').read())\n"
        "parts = [part for part in message.walk() if not part.is_multipart()]\n"
        "print(parts[0].get_content_type()); sys.stdout.write(parts[0].get_payload(decode=True).decode())\n"
    )
    result = subprocess.run(["/usr/bin/python3", "-c", program, str(tmp_path / "user-data")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    content_type, _, document = result.stdout.partition("\n")
    assert content_type == "text/cloud-config"
    assert yaml.safe_load(document)["write_files"] == yaml.safe_load(user_data_text(encoded))["write_files"]
