"""Web tier: the load balancer and the Auto Scaling fleet behind it."""

from __future__ import annotations

import json

import pytest
import yaml
from stackjson import written_files

APP_GROUP = "greenleaf-prod-app"
ALB_GROUP = "greenleaf-prod-alb"


def fleet_template(stack):
    return stack.named("aws_launch_template", "name", f"greenleaf-{stack.path.parent.name.split('-')[0]}-app")[1]


def fleet_group(stack):
    return stack.named("aws_autoscaling_group", "name", f"greenleaf-{stack.path.parent.name.split('-')[0]}-app")[1]


def fleet_files(stack) -> dict[str, str]:
    return written_files(fleet_template(stack))


# Load balancer -------------------------------------------------------------------------


def test_alb_is_internet_facing_in_both_public_subnets(prod):
    alb = prod.only("aws_lb")
    assert alb["load_balancer_type"] == "application" and alb["internal"] is False
    zones = {prod.resolve(ref)[2]["availability_zone"]: prod.resolve(ref)[2]["tags"]["Tier"] for ref in alb["subnets"]}
    assert zones == {"eu-west-3a": "public", "eu-west-3b": "public"}


def test_without_edge_or_cidrs_the_alb_group_accepts_port_80_from_anywhere(prod_http_only):
    rules = prod_http_only.ingress_rules(group=ALB_GROUP)
    assert [(rule.peer, rule.from_port, rule.to_port) for rule in rules] == [("0.0.0.0/0", 80, 80)]


def test_alb_group_can_be_limited_to_given_cidrs_on_both_ports(prod_custom):
    rules = prod_custom.ingress_rules(group=ALB_GROUP)
    assert {(rule.peer, rule.from_port) for rule in rules} == {(cidr, port) for cidr in ("173.245.48.0/20", "103.21.244.0/22") for port in (80, 443)}


def test_target_group_is_http_80_instances_with_the_health_check_of_the_ticket(prod):
    group = prod.only("aws_lb_target_group")
    assert (group["protocol"], group["port"], group["target_type"]) == ("HTTP", 80, "instance")
    check = group["health_check"]
    assert (check["path"], check["interval"], check["healthy_threshold"], check["unhealthy_threshold"]) == ("/health", 30, 2, 2)


def test_listener_443_forwards_to_the_target_group(prod):
    (listener,) = [body for body in prod.resources("aws_lb_listener").values() if body["port"] == 443]
    (target_key,) = prod.resources("aws_lb_target_group")
    (alb_key,) = prod.resources("aws_lb")
    assert listener["protocol"] == "HTTPS"
    assert listener["load_balancer_arn"] == prod.ref("aws_lb", alb_key, "arn")
    assert listener["default_action"] == [{"type": "forward", "target_group_arn": prod.ref("aws_lb_target_group", target_key, "arn")}]


def test_an_http_only_origin_forwards_port_80(prod_http_only):
    listener = prod_http_only.only("aws_lb_listener")
    assert (listener["port"], listener["protocol"], listener["default_action"][0]["type"]) == (80, "HTTP", "forward")


def test_alb_dns_name_is_an_output(prod):
    (alb_key,) = prod.resources("aws_lb")
    assert prod.outputs["alb_dns_name"]["value"] == prod.ref("aws_lb", alb_key, "dns_name")


def test_app_instances_accept_http_only_from_the_alb(prod):
    assert [(rule.peer, rule.from_port) for rule in prod.ingress_rules(group=APP_GROUP)] == [(ALB_GROUP, 80)]
    assert [(rule.peer, rule.from_port) for rule in prod.egress_rules(group=ALB_GROUP)] == [(APP_GROUP, 80)]


# Launch template -----------------------------------------------------------------------


def test_launch_template_is_t3_small_amazon_linux_2023_with_imdsv2_required(prod):
    template = fleet_template(prod)
    assert template["instance_type"] == "t3.small"
    assert template["metadata_options"]["http_tokens"] == "required"
    assert prod.ssm_parameter_name(template["image_id"]) == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"


def test_root_volume_is_encrypted_gp3(prod):
    (mapping,) = fleet_template(prod)["block_device_mappings"]
    assert mapping["ebs"]["encrypted"] == "true" and mapping["ebs"]["volume_type"] == "gp3"


def test_instance_profile_gives_ssm_core_the_db_secret_and_the_media_bucket(prod_custom):
    prod = prod_custom  # media in S3 (no edge)
    template = fleet_template(prod)
    _, _, profile = prod.resolve(template["iam_instance_profile"]["arn"])
    role_reference = profile["role"]
    attached = [body["policy_arn"] for body in prod.resources("aws_iam_role_policy_attachment").values() if body["role"] == role_reference]
    assert attached == ["arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"]
    (policy,) = [body["policy"] for body in prod.resources("aws_iam_role_policy").values() if body["name"] == "greenleaf-prod-app-inline"]
    (db_key,) = prod.resources("aws_db_instance")
    (bucket_key,) = prod.resources("aws_s3_bucket")
    assert "secretsmanager:GetSecretValue" in policy and f"${{aws_db_instance.{db_key}.master_user_secret[0].secret_arn}}" in policy
    assert f"${{aws_s3_bucket.{bucket_key}.arn}}/*" in policy and "s3:PutObject" in policy


def test_user_data_installs_ansible_and_git_and_runs_the_bundled_playbook(prod):
    files = fleet_files(prod)
    script = files["/var/lib/cloud/scripts/per-boot/spawnit-app.sh"]
    assert "dnf install -y ansible-core git" in script
    assert 'ansible-playbook "$SPAWNIT_ROOT/ansible/playbook.yml"' in script and "SPAWNIT_ROOT=${SPAWNIT_ROOT:-/opt/spawnit}" in script
    playbook = yaml.safe_load(files["/opt/spawnit/ansible/playbook.yml"])
    task_modules = {key for task in playbook[0]["tasks"] for key in task if key.startswith("ansible.")}
    assert {"ansible.builtin.dnf", "ansible.builtin.get_url", "ansible.builtin.systemd_service", "ansible.builtin.user"} <= task_modules


def test_user_data_builds_database_url_at_boot_from_the_secret(prod):
    files = fleet_files(prod)
    script = files["/var/lib/cloud/scripts/per-boot/spawnit-app.sh"]
    assert 'aws secretsmanager get-secret-value' in script
    assert 'DATABASE_URL="postgres://' in script
    assert "REDIS_URL=$REDIS_URL" in script and "S3_BUCKET=$S3_BUCKET" in script
    assert 'exec >>"${SPAWNIT_LOG:-/var/log/user-data.log}"' in script


def test_boot_settings_come_from_an_ssm_parameter_holding_endpoints_not_secrets(prod):
    (db_key,) = prod.resources("aws_db_instance")
    (redis_key,) = prod.resources("aws_elasticache_replication_group")
    parameter = prod.only("aws_ssm_parameter")
    assert f"SETTINGS_PARAMETER='{parameter['name']}'" in fleet_files(prod)["/opt/spawnit/boot.conf"]
    assert f"DB_HOST='${{aws_db_instance.{db_key}.address}}'" in parameter["value"]
    assert f"REDIS_URL='rediss://${{aws_elasticache_replication_group.{redis_key}.primary_endpoint_address}}:6379'" in parameter["value"]


def test_user_data_starts_the_bundled_compose_stack_and_caddyfile(prod):
    files = fleet_files(prod)
    compose = yaml.safe_load(files["/opt/spawnit/app/docker-compose.yml"])
    assert set(compose["services"]) == {"backend", "storefront", "caddy"}
    assert "reverse_proxy backend:9000" in files["/opt/spawnit/app/Caddyfile"]
    assert "docker compose" in files["/var/lib/cloud/scripts/per-boot/spawnit-app.sh"]


def test_images_are_parameters(outdir):
    from conftest import default_spec

    from spawnit.constructs import AppRelease
    from spawnit.constructs.app import app_user_data

    spec = default_spec("prod", backend_image="registry.example.com/shop/backend:1.2.3")
    release = AppRelease(backend_image=spec.backend_image)
    assert "BACKEND_IMAGE='registry.example.com/shop/backend:1.2.3'" in app_user_data(release, region="eu-west-3", settings_parameter="/p")


def test_the_publishable_key_reaches_the_hosts_boot_settings(prod, prod_custom):
    """A key set in the spec is in boot.conf, from which the boot script writes .env for the storefront."""
    key = "pk_" + "0123456789abcdef" * 4
    assert f"MEDUSA_PUBLISHABLE_KEY='{key}'" in fleet_files(prod_custom)["/opt/spawnit/boot.conf"]
    assert "MEDUSA_PUBLISHABLE_KEY=''" in fleet_files(prod)["/opt/spawnit/boot.conf"]


# Auto Scaling group --------------------------------------------------------------------


def test_fleet_is_2_to_4_desired_2_over_the_private_app_subnets(prod):
    group = fleet_group(prod)
    assert (group["min_size"], group["max_size"], group["desired_capacity"]) == (2, 4, 2)
    tiers = {prod.resolve(ref)[2]["tags"]["Tier"] for ref in group["vpc_zone_identifier"]}
    zones = {prod.resolve(ref)[2]["availability_zone"] for ref in group["vpc_zone_identifier"]}
    assert tiers == {"app"} and zones == {"eu-west-3a", "eu-west-3b"}


def test_fleet_uses_elb_health_checks_with_a_900_s_grace_that_covers_a_first_boot(prod):
    """A first boot installs Ansible, Docker and Compose and pulls the images through a t4g.nano NAT:
    a grace shorter than that makes the group replace instances that are still booting, in a loop."""
    group = fleet_group(prod)
    (target_key,) = prod.resources("aws_lb_target_group")
    assert group["health_check_type"] == "ELB" and group["health_check_grace_period"] == 900
    assert group["instance_refresh"]["preferences"]["instance_warmup"] == "900"
    assert group["target_group_arns"] == [prod.ref("aws_lb_target_group", target_key, "arn")]


def test_fleet_tracks_60_percent_average_cpu(prod):
    policy = prod.only("aws_autoscaling_policy")
    assert policy["policy_type"] == "TargetTrackingScaling"
    tracking = policy["target_tracking_configuration"]
    assert tracking["predefined_metric_specification"]["predefined_metric_type"] == "ASGAverageCPUUtilization"
    assert tracking["target_value"] == 60


def test_fleet_rolls_out_new_versions_keeping_half_healthy(prod):
    refresh = fleet_group(prod)["instance_refresh"]
    assert refresh["strategy"] == "Rolling" and refresh["preferences"]["min_healthy_percentage"] == 50


def test_fleet_follows_the_latest_launch_template_version(prod):
    (template_key,) = [key for key, body in prod.resources("aws_launch_template").items() if body["name"] == "greenleaf-prod-app"]
    assert fleet_group(prod)["launch_template"]["version"] == prod.ref("aws_launch_template", template_key, "latest_version")


@pytest.mark.parametrize("environment", ["preprod", "prod"])
def test_preprod_and_prod_fleets_are_t3_small(environment, all_stacks):
    assert fleet_template(all_stacks[environment])["instance_type"] == "t3.small"


def test_a_new_amazon_linux_release_does_not_roll_the_fleet_unless_a_release_says_so(prod):
    (template,) = [t for t in prod.resources("aws_launch_template").values() if t["name"] == "greenleaf-prod-app"]
    assert "image_id" in template["lifecycle"]["ignore_changes"]
    from conftest import default_spec
    from spawnit.stacks import ProdStack
    from cdktf import Testing

    app = Testing.app()
    pinned = ProdStack(app, default_spec("prod", app_ami_id="ami-0123456789abcdef0"), id="prod-pinned")
    document = json.loads(Testing.synth(pinned))
    (template,) = [t for t in document["resource"]["aws_launch_template"].values() if t["name"] == "greenleaf-prod-app"]
    assert template["image_id"] == "ami-0123456789abcdef0" and "lifecycle" not in template


def test_the_redis_of_job_queues_never_evicts_keys(prod):
    """BullMQ (Medusa's event bus and workflows) requires maxmemory-policy noeviction: ElastiCache's
    default volatile-lru drops job locks, which carry an expiry (taskforcesh/bullmq#2215)."""
    group = prod.only("aws_elasticache_parameter_group")
    (group_key,) = prod.resources("aws_elasticache_parameter_group")
    assert group["family"] == "redis7" and group["parameter"] == [{"name": "maxmemory-policy", "value": "noeviction"}]
    assert prod.only("aws_elasticache_replication_group")["parameter_group_name"] == prod.ref("aws_elasticache_parameter_group", group_key, "name")
