"""Spotilike (seed 004), read like its sprint checklist: the API on Fargate behind the ALB, the frontend on EKS
nodes in private subnets, RDS private and backed up, S3 encrypted and private, CloudFront through origin access
control, roles of least privilege; and the constructs' own rules."""

from __future__ import annotations

import json

import pytest
from cdktf import App, TerraformStack

from spawnit.config import ConfigError
from spawnit.stacks.spotilike_settings import load_spotilike_spec


@pytest.fixture(scope="session")
def spotilike(all_stacks):
    return all_stacks["spotilike"]


@pytest.fixture(scope="session")
def spotilike_web(all_stacks):
    return all_stacks["spotilike-web"]


def subnets(stack, tier: str) -> set[str]:
    """References to the network's subnets of ``tier`` (public, app, data)."""
    return {f"${{aws_subnet.{key}.id}}" for key in stack.resources("aws_subnet") if key.startswith(f"network_{tier}-")}


def app_subnets(stack) -> set[str]:
    return subnets(stack, "app")


def public_subnets(stack) -> set[str]:
    return subnets(stack, "public")


# The API on Fargate ------------------------------------------------------------------------------


def test_the_api_runs_on_fargate_behind_the_load_balancer(spotilike):
    service = spotilike.only("aws_ecs_service")
    (group_key, group), = spotilike.resources("aws_lb_target_group").items()
    assert service["launch_type"] == "FARGATE"
    assert service["load_balancer"] == [{"target_group_arn": f"${{aws_lb_target_group.{group_key}.arn}}", "container_name": "spotilike-api", "container_port": 8000}]
    assert (group["target_type"], group["port"], group["health_check"]["path"]) == ("ip", 8000, "/health")
    assert service["deployment_circuit_breaker"] == {"enable": True, "rollback": True}


def test_api_tasks_run_in_the_private_subnets_without_public_addresses(spotilike):
    network = spotilike.only("aws_ecs_service")["network_configuration"]
    assert set(network["subnets"]) == app_subnets(spotilike) and network["assign_public_ip"] is False


def test_only_the_load_balancer_reaches_the_tasks_and_only_the_tasks_reach_the_database(spotilike):
    tasks_in = spotilike.ingress_rules(group="spotilike-api-tasks")
    assert [(rule.peer, rule.from_port) for rule in tasks_in] == [("spotilike-alb", 8000)]
    db_in = spotilike.ingress_rules(group="spotilike-db")
    assert [(rule.peer, rule.from_port) for rule in db_in] == [("spotilike-api-tasks", 5432)]


def test_the_task_size_is_one_fargate_accepts_and_scaling_tracks_cpu(spotilike):
    task = spotilike.only("aws_ecs_task_definition")
    assert (task["cpu"], task["memory"], task["network_mode"], task["requires_compatibilities"]) == ("256", "512", "awsvpc", ["FARGATE"])
    target = spotilike.only("aws_appautoscaling_target")
    assert (target["min_capacity"], target["max_capacity"]) == (1, 3)
    policy = spotilike.only("aws_appautoscaling_policy")["target_tracking_scaling_policy_configuration"]
    assert policy["predefined_metric_specification"]["predefined_metric_type"] == "ECSServiceAverageCPUUtilization"


def test_database_credentials_reach_the_api_from_secrets_manager_never_as_values(spotilike):
    definitions = spotilike.only("aws_ecs_task_definition")["container_definitions"]
    (db_key,) = spotilike.resources("aws_db_instance")
    for name, key in (("DB_PASSWORD", "password"), ("DB_USER", "username")):  # ECS: valueFrom = secret ARN:json-key:stage:version
        assert f'{{"name" = "{name}", "valueFrom" = "${{aws_db_instance.{db_key}.master_user_secret[0].secret_arn}}:{key}::"}}' in definitions
    assert '"DB_PASSWORD", "value"' not in definitions


# Actions IAM cannot scope to a resource (the Service Authorization Reference lists no resource type for them).
UNSCOPABLE = {"ecr:GetAuthorizationToken", "ec2:DescribeNetworkInterfaces"}


def test_the_roles_are_least_privilege_no_action_on_every_resource(spotilike):
    for key, policy in spotilike.resources("aws_iam_role_policy").items():
        for statement in json.loads(policy["policy"])["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert "*" not in actions and not any(action.endswith(":*") for action in actions), key
            if statement["Resource"] == "*":
                assert set(actions) <= UNSCOPABLE, (key, actions)


def test_the_api_may_read_and_write_the_media_and_read_only_its_database_secret(spotilike):
    policies = {policy["name"]: json.loads(policy["policy"])["Statement"] for policy in spotilike.resources("aws_iam_role_policy").values()}
    media = policies["spotilike-api-media-media"]
    assert {action for statement in media for action in statement["Action"]} == {"s3:ListBucket", "s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
    (secrets,) = [statement for statement in policies["spotilike-api-execution"] if statement["Action"] == ["secretsmanager:GetSecretValue"]]
    assert len(secrets["Resource"]) == 1 and secrets["Resource"][0].endswith(".master_user_secret[0].secret_arn}")


# The frontend on EKS ------------------------------------------------------------------------------


def test_the_eks_node_group_runs_t3_nodes_in_the_private_subnets(spotilike):
    nodes = spotilike.only("aws_eks_node_group")
    assert set(nodes["subnet_ids"]) == app_subnets(spotilike) and not set(nodes["subnet_ids"]) & public_subnets(spotilike)
    assert nodes["instance_types"] == ["t3.medium"] and nodes["scaling_config"] == {"min_size": 1, "desired_size": 2, "max_size": 3}


def test_the_cluster_logs_its_control_plane_encrypts_secrets_and_trusts_its_oidc_issuer(spotilike):
    cluster = spotilike.only("aws_eks_cluster")
    assert set(cluster["enabled_cluster_log_types"]) == {"api", "audit", "authenticator", "controllerManager", "scheduler"}
    assert cluster["encryption_config"]["resources"] == ["secrets"] and cluster["encryption_config"]["provider"]["key_arn"].startswith("${aws_kms_key.")
    assert set(cluster["vpc_config"]["subnet_ids"]) == app_subnets(spotilike)
    oidc = spotilike.only("aws_iam_openid_connect_provider")
    assert oidc["url"].endswith(".identity[0].oidc[0].issuer}") and oidc["client_id_list"] == ["sts.amazonaws.com"]


def test_load_balancers_of_the_cluster_find_the_public_subnets_by_the_subnets_own_tags(spotilike):
    """The elb role tag is in the subnets' own ``tags`` (the network owns them), never an aws_ec2_tag beside
    them, which the AWS provider's docs say flips on every apply (proven with the real engine in test_engine_network)."""
    subnets = spotilike.resources("aws_subnet")
    tagged = {f"${{aws_subnet.{key}.id}}" for key, body in subnets.items() if body["tags"].get("kubernetes.io/role/elb") == "1"}
    assert tagged == public_subnets(spotilike)
    assert all(body["tags"]["Name"].startswith("spotilike-") for body in subnets.values())


def test_no_construct_tags_a_resource_another_construct_owns(all_stacks):
    assert {name for name, stack in all_stacks.items() if stack.count("aws_ec2_tag")} == set()


def test_the_frontend_is_its_own_stack_applied_after_the_cluster(spotilike_web, outdir):
    manifest = json.loads((outdir / "manifest.json").read_text())
    assert manifest["stacks"]["spotilike-web"]["dependencies"] == ["spotilike"]
    provider = spotilike_web.document["provider"]["kubernetes"][0]
    assert provider["host"].startswith("${data.aws_eks_cluster.") and provider["token"].startswith("${data.aws_eks_cluster_auth.")
    (cluster,) = spotilike_web.data("aws_eks_cluster").values()
    assert cluster["name"] == "spotilike"


def test_the_frontend_pods_are_hardened_and_exposed_through_a_load_balancer(spotilike_web):
    deployment = spotilike_web.only("kubernetes_deployment_v1")
    spec = deployment["spec"]["template"]["spec"]
    container = spec["container"][0]
    assert deployment["metadata"]["namespace"].startswith("${kubernetes_namespace_v1.")  # its own namespace, not default
    assert deployment["spec"]["replicas"] == "2" and spec["security_context"]["run_as_non_root"] is True
    context = container["security_context"]
    assert context["read_only_root_filesystem"] is True and context["allow_privilege_escalation"] is False and context["capabilities"]["drop"] == ["ALL"]
    assert container["resources"]["limits"] == {"cpu": "500m", "memory": "256Mi"}
    service = spotilike_web.only("kubernetes_service_v1")
    assert service["spec"]["type"] == "LoadBalancer" and service["spec"]["port"] == [{"name": "http", "port": 80, "target_port": "3000", "protocol": "TCP"}]


# Data, media, static content ----------------------------------------------------------------------


def test_the_database_is_private_encrypted_and_backed_up_twice(spotilike):
    db = spotilike.only("aws_db_instance")
    assert db["publicly_accessible"] is False and db["storage_encrypted"] is True and db["backup_retention_period"] == 7
    assert db["instance_class"] == "db.t3.micro"  # RDS free tier
    plan = spotilike.only("aws_backup_plan")
    assert plan["rule"][0]["lifecycle"]["delete_after"] == 35 and plan["rule"][0]["schedule"] == "cron(0 3 * * ? *)"
    selection = spotilike.only("aws_backup_selection")
    assert selection["resources"] == [f"${{aws_db_instance.{spotilike.named('aws_db_instance', 'identifier', 'spotilike-db')[0]}.arn}}"]
    assert spotilike.only("aws_backup_vault")["kms_key_arn"].startswith("${aws_kms_key.")


def test_media_and_static_buckets_are_encrypted_and_private(spotilike):
    blocks = list(spotilike.resources("aws_s3_bucket_public_access_block").values())
    assert len(blocks) == 2 and all(block[flag] is True for block in blocks for flag in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"))
    encryption = list(spotilike.resources("aws_s3_bucket_server_side_encryption_configuration").values())
    assert len(encryption) == 2 and all(item["rule"][0]["apply_server_side_encryption_by_default"]["sse_algorithm"] == "AES256" for item in encryption)


def test_cloudfront_reads_the_static_bucket_only_through_origin_access_control_over_https(spotilike):
    distribution_key, distribution = next((key, body) for key, body in spotilike.resources("aws_cloudfront_distribution").items() if body.get("default_root_object"))
    oac = next(body for body in spotilike.resources("aws_cloudfront_origin_access_control").values() if body["name"] == "spotilike-static")
    assert (oac["origin_access_control_origin_type"], oac["signing_behavior"], oac["signing_protocol"]) == ("s3", "always", "sigv4")
    origin = distribution["origin"][0]
    assert origin["origin_access_control_id"].startswith("${aws_cloudfront_origin_access_control.") and "s3_origin_config" not in origin
    assert distribution["default_cache_behavior"]["viewer_protocol_policy"] == "redirect-to-https" and distribution["default_root_object"] == "index.html"
    policies = [json.loads(policy["policy"]) for policy in spotilike.resources("aws_s3_bucket_policy").values()]
    (static_policy,) = [policy for policy in policies if policy["Statement"][0].get("Condition", {}).get("StringEquals", {}).get("AWS:SourceArn", "").endswith(f"{distribution_key}.arn}}")]
    allow = static_policy["Statement"][0]
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"} and allow["Action"] == "s3:GetObject"
    assert allow["Condition"] == {"StringEquals": {"AWS:SourceArn": f"${{aws_cloudfront_distribution.{distribution_key}.arn}}"}}


# Constructs and spec: errors at synth time ------------------------------------------------------


@pytest.fixture
def scope():
    return TerraformStack(App(), "probe")


def test_a_task_size_fargate_refuses_names_the_pair_and_what_is_allowed(scope):
    from spawnit.constructs.containers import check_fargate_size

    with pytest.raises(ValueError, match=r"FargateService memory_mib: 4096 is not allowed with cpu 256; allowed: 512, 1024, 2048"):
        check_fargate_size(256, 4096)
    with pytest.raises(ValueError, match=r"FargateService memory_mib: 2500 is not allowed with cpu 2048; allowed: 4096-16384 in steps of 1024"):
        check_fargate_size(2048, 2500)
    with pytest.raises(ValueError, match=r"FargateService cpu: 300 is not allowed; allowed: 256, 512, 1024"):
        check_fargate_size(300, 512)


def test_the_cluster_refuses_nodes_outside_the_t3_family(scope):
    from spawnit.constructs import KubernetesCluster, Network

    network = Network(scope, "net", name="probe", nat="none")
    with pytest.raises(ValueError, match=r"KubernetesCluster instance_type: 'm5.large' is not allowed; allowed: the t3 family"):
        KubernetesCluster(scope, "eks", name="probe", network=network, instance_type="m5.large")


def test_the_static_site_refuses_an_unknown_price_class(scope):
    from spawnit.constructs import StaticSite

    with pytest.raises(ValueError, match=r"StaticSite price_class: 'PriceClass_1' is not allowed; allowed: PriceClass_100, PriceClass_200, PriceClass_All"):
        StaticSite(scope, "site", bucket_name="probe-static", price_class="PriceClass_1")


def test_the_spotilike_spec_names_a_bad_size_and_a_misspelled_variable():
    with pytest.raises(ConfigError, match=r"spotilike.eks_nodes_desired = 5 is not between eks_nodes_min 1 and eks_nodes_max 3 \(from overrides\)"):
        load_spotilike_spec(config_file=None, environ={}, overrides={"eks_nodes_desired": 5})
    # Fargate's task sizes are checked when the settings are read, naming where the value came from
    with pytest.raises(ConfigError, match=r"spotilike.api_memory_mib = 4096 is not allowed with cpu 256; allowed: 512, 1024, 2048 \(from SPAWNIT_SPOTILIKE_API_MEMORY_MIB\)"):
        load_spotilike_spec(config_file=None, environ={"SPAWNIT_SPOTILIKE_API_MEMORY_MIB": "4096"})
    with pytest.raises(ConfigError, match="SPAWNIT_SPOTILIKE_API_CPUS: unknown field 'api_cpus'; did you mean 'api_cpu'"):
        load_spotilike_spec(config_file=None, environ={"SPAWNIT_SPOTILIKE_API_CPUS": "512"})


def test_the_spotilike_spec_reads_its_section_and_variables(tmp_path):
    config = tmp_path / "spawnit.toml"
    config.write_text('[spotilike]\napi_cpu = 512\napi_memory_mib = 1024\n')
    spec = load_spotilike_spec(config_file=config, environ={"SPAWNIT_SPOTILIKE_WEB_REPLICAS": "4"})
    assert (spec.api_cpu, spec.api_memory_mib, spec.web_replicas) == (512, 1024, 4)


# From the second run-time review -----------------------------------------------------------------


def test_the_api_is_served_over_https_through_the_edge_and_only_cloudflare_reaches_its_load_balancer(spotilike):
    listeners = {body["port"]: body for body in spotilike.resources("aws_lb_listener").values()}
    assert listeners[443]["protocol"] == "HTTPS" and listeners[443]["certificate_arn"].startswith("${aws_acm_certificate_validation.")
    assert listeners[80]["default_action"][0]["type"] == "redirect"
    ingress = [rule for rule in spotilike.resources("aws_vpc_security_group_ingress_rule").values() if "alb" in rule["security_group_id"]]
    assert ingress and all("cloudflare_ip_ranges" in rule.get("for_each", "") for rule in ingress)  # nothing from 0.0.0.0/0
    site = next(body for body in spotilike.resources("cloudflare_dns_record").values() if body.get("proxied"))
    assert site["name"] == "api.spotilike.example" and site["content"].startswith("${aws_lb.")
    assert spotilike.document["output"]["api_url"]["value"] == "https://api.spotilike.example"


def test_the_kubernetes_api_has_no_public_endpoint_unless_networks_are_listed(spotilike):
    vpc = spotilike.only("aws_eks_cluster")["vpc_config"]
    assert vpc["endpoint_private_access"] is True and vpc["endpoint_public_access"] is False and "public_access_cidrs" not in vpc


def test_the_frontend_writes_only_into_empty_dirs_beside_its_read_only_root(spotilike_web):
    """Next.js writes its cache under .next/cache: with a read-only root filesystem and no volume there, every
    image optimisation and ISR write fails. Each folder it writes is an emptyDir."""
    spec = spotilike_web.only("kubernetes_deployment_v1")["spec"]["template"]["spec"]
    (container,) = spec["container"]
    assert container["security_context"]["read_only_root_filesystem"] is True
    volumes = {volume["name"]: volume for volume in spec["volume"]}
    mounts = {mount["mount_path"]: mount["name"] for mount in container["volume_mount"]}
    assert set(mounts) == {"/tmp", "/app/.next/cache"} and all("empty_dir" in volumes[name] for name in mounts.values())


def test_two_workloads_in_one_stack_share_their_clusters_provider_and_a_second_cluster_gets_its_own(all_stacks):
    """Before: "There is already a Construct with name 'kubernetes'" at synth, the provider being a stack singleton."""
    stack = all_stacks["two-workloads"]
    providers = stack.document["provider"]["kubernetes"]
    assert len(providers) == 2 and sorted(provider.get("alias", "") for provider in providers) == ["", "ops"]
    deployments = {body["metadata"]["name"]: body for body in stack.resources("kubernetes_deployment_v1").values()}
    assert set(deployments) == {"web", "admin", "tools"}
    assert {name: body["provider"] for name, body in deployments.items()} == {"web": "kubernetes", "admin": "kubernetes", "tools": "kubernetes.ops"}
    assert {body["name"] for body in stack.data("aws_eks_cluster").values()} == {"shop", "ops"}
