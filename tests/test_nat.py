"""NAT instances: one per AZ, nano, AL2023, source/destination check off, self-healing behind a fixed ENI."""

from __future__ import annotations


import pytest

from spawnit.shared import user_data_text
import yaml

ZONES = ("eu-west-3a", "eu-west-3b")


def nat_template(stack, zone):
    return stack.named("aws_launch_template", "name", f"greenleaf-prod-nat-{zone}")[1]


def nat_group(stack, zone):
    return stack.named("aws_autoscaling_group", "name", f"greenleaf-prod-nat-{zone}")[1]


def user_data(template) -> dict:
    text = user_data_text(template["user_data"])
    assert text.startswith("#cloud-config\n")
    return yaml.safe_load(text)


def boot_script(template) -> str:
    (script,) = [f["content"] for f in user_data(template)["write_files"] if f["path"].startswith("/var/lib/cloud/scripts/per-boot/")]
    return script


def test_one_nat_per_zone_in_prod(prod):
    assert prod.count("aws_network_interface") == 2
    for zone in ZONES:
        group = nat_group(prod, zone)
        _, _, subnet = prod.resolve(group["vpc_zone_identifier"][0])
        assert len(group["vpc_zone_identifier"]) == 1
        assert (subnet["availability_zone"], subnet["tags"]["Tier"]) == (zone, "public")


@pytest.mark.parametrize("zone", ZONES)
def test_nat_is_an_auto_scaling_group_of_exactly_one(prod, zone):
    group = nat_group(prod, zone)
    assert (group["min_size"], group["max_size"], group["desired_capacity"]) == (1, 1, 1)


@pytest.mark.parametrize("zone", ZONES)
def test_nat_instance_is_a_nano_running_the_latest_amazon_linux_2023(prod, zone):
    template = nat_template(prod, zone)
    assert template["instance_type"] in ("t4g.nano", "t3.nano")
    assert prod.ssm_parameter_name(template["image_id"]) == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"


def test_the_fixed_interface_the_routes_target_has_source_dest_check_off(prod):
    for interface in prod.resources("aws_network_interface").values():
        assert interface["source_dest_check"] is False


def test_nat_security_group_accepts_only_the_vpc_cidr(prod):
    rules = prod.ingress_rules(group="greenleaf-prod-nat")
    assert rules and {rule.peer for rule in rules} == {"10.0.0.0/16"}


@pytest.mark.parametrize("zone", ZONES)
def test_nat_requires_imdsv2_and_encrypts_its_disk(prod, zone):
    template = nat_template(prod, zone)
    assert template["metadata_options"]["http_tokens"] == "required"
    assert template["block_device_mappings"][0]["ebs"]["encrypted"] == "true"


@pytest.mark.parametrize("zone", ZONES)
def test_nat_boot_attaches_the_fixed_interface_tagged_for_its_zone(prod, zone):
    template = nat_template(prod, zone)
    files = {f["path"]: f["content"] for f in user_data(template)["write_files"]}
    assert f"NAT_NAME='greenleaf-prod-nat-{zone}'" in files["/opt/spawnit/nat.conf"]
    interface = next(body for body in prod.resources("aws_network_interface").values() if body["tags"]["Name"] == f"greenleaf-prod-nat-{zone}")
    assert interface["tags"]["spawnit:nat"] == f"greenleaf-prod-nat-{zone}"
    assert "aws ec2 attach-network-interface" in boot_script(template)


def test_nat_forwarding_and_masquerade_are_persistent_and_use_the_real_default_interface(prod):
    script = boot_script(nat_template(prod, "eu-west-3a"))
    assert "net.ipv4.ip_forward = 1" in script and "/etc/sysctl.d/" in script
    assert "ip -o -4 route show default" in script
    assert '-j MASQUERADE' in script and '-o "$egress_interface"' in script
    assert "eth0" not in script.replace("assumed to be eth0", "")
    assert "service iptables save" in script and "systemctl enable iptables" in script


def test_nat_role_may_attach_only_its_own_interface(prod):
    policies = [body["policy"] for body in prod.resources("aws_iam_role_policy").values() if body["name"].startswith("greenleaf-prod-nat-")]
    assert len(policies) == 2
    for policy in policies:
        assert "ec2:AttachNetworkInterface" in policy and "network-interface/${aws_network_interface." in policy
