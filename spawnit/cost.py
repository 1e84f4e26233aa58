"""Monthly cost estimate of synthesized stacks, read from their JSON (what OpenTofu would apply).

It knows the architecture's levers: Auto Scaling desired capacity and its
schedules (hours awake per week, from the recurrences), RDS stopped by
EventBridge Scheduler, Multi-AZ doubling, spot discounts, NAT instances
versus NAT gateways. Every resource type is either priced, known to be free,
or reported as unpriced: nothing is silently zero.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .shared import did_you_mean

MINUTES_PER_WEEK = 7 * 24 * 60
HOURS_PER_WEEK = 7 * 24
NAT_TAG = "spawnit:nat"
DEFAULT_STACKS = ("dev", "preprod", "prod")  # what the budget covers; other stacks are estimated when named

FREE_TYPES = frozenset(
    {
        "aws_vpc", "aws_subnet", "aws_internet_gateway", "aws_route", "aws_route_table", "aws_route_table_association",
        "aws_security_group", "aws_vpc_security_group_ingress_rule", "aws_vpc_security_group_egress_rule",
        "aws_network_interface", "aws_launch_template", "aws_iam_role", "aws_iam_role_policy", "aws_iam_role_policy_attachment",
        "aws_iam_instance_profile", "aws_db_subnet_group", "aws_elasticache_subnet_group", "aws_lb_target_group", "aws_lb_listener",
        "aws_autoscaling_policy", "aws_autoscaling_schedule", "aws_scheduler_schedule", "aws_sns_topic", "aws_sns_topic_policy",
        "aws_sns_topic_subscription", "aws_budgets_budget", "aws_ssm_parameter", "aws_s3_bucket_versioning",
        "aws_s3_bucket_server_side_encryption_configuration", "aws_s3_bucket_public_access_block", "aws_s3_bucket_ownership_controls",
        "aws_secretsmanager_secret_version", "aws_default_security_group", "aws_s3_bucket_lifecycle_configuration",
        "aws_kms_alias", "aws_volume_attachment", "aws_elasticache_parameter_group", "aws_s3_bucket_policy",
        "aws_ecs_cluster", "aws_ecs_task_definition", "aws_appautoscaling_target", "aws_appautoscaling_policy",
        "aws_iam_openid_connect_provider", "aws_ec2_tag", "aws_cloudfront_origin_access_control", "aws_backup_plan",
        "aws_backup_selection", "kubernetes_namespace_v1", "kubernetes_deployment_v1",
        # public ACM certificates are free; the Cloudflare zone's records, settings, Free Managed Ruleset,
        # R2 custom domain and API tokens come with the Free plan (R2 storage is priced below)
        "aws_acm_certificate", "aws_acm_certificate_validation", "cloudflare_dns_record", "cloudflare_zone_setting",
        "cloudflare_ruleset", "cloudflare_r2_custom_domain", "cloudflare_account_token",
    }
)  # no charge of their own (first two budgets are free; SNS e-mail and Scheduler stay in their free tiers at this volume)


class CostError(ValueError):
    """The estimate cannot be made: a missing price table, an unsupported schedule..."""


@dataclass(frozen=True)
class Assumptions:
    """Usage the JSON cannot tell, with their defaults."""

    spot_discount: float = 0.70  # spot price = on-demand x (1 - discount)
    nat_gateway_gb_month: float = 100.0  # data processed per NAT gateway
    alb_lcu: float = 1.0  # average load balancer capacity units
    s3_gb_month: float = 50.0  # stored per bucket
    cdn_gb_month: float = 50.0  # served by each CloudFront distribution
    cdn_requests_month: float = 1_000_000  # HTTPS requests to each distribution
    log_gb_month: float = 1.0  # ingested by each CloudWatch log group

    def describe(self) -> str:
        """The assumptions in words, for the footer of the tables."""
        return (
            f"spot {self.spot_discount:.0%} off on-demand, {self.nat_gateway_gb_month:g} GB a month through each NAT gateway, "
            f"{self.alb_lcu:g} LCU per load balancer, {self.s3_gb_month:g} GB stored per bucket, "
            f"{self.cdn_gb_month:g} GB and {self.cdn_requests_month:,.0f} requests a month per CloudFront distribution, "
            f"{self.log_gb_month:g} GB a month into each log group, backups as large as what they copy"
        )

    def __post_init__(self) -> None:
        if not 0 <= self.spot_discount < 1:
            raise CostError(f"spot_discount: {self.spot_discount} is not allowed; allowed: 0 <= discount < 1")
        for name in ("nat_gateway_gb_month", "alb_lcu", "s3_gb_month", "cdn_gb_month", "cdn_requests_month", "log_gb_month"):
            if getattr(self, name) < 0:
                raise CostError(f"{name}: {getattr(self, name)} is not allowed; allowed: 0 or more")


class PriceTable:
    """A dated price table for one region; each category cites its source."""

    def __init__(self, document: Mapping[str, Any], origin: str) -> None:
        self.document = document
        self.origin = origin
        self.region: str = document["region"]
        self.as_of: str = document["as_of"]
        self.hours_per_month: float = document.get("hours_per_month", 730)
        self.categories: Mapping[str, Mapping[str, Any]] = document["prices"]

    @classmethod
    def bundled(cls, region: str) -> PriceTable:
        path = resources.files("spawnit").joinpath("assets", "prices", f"{region}.json")
        if not path.is_file():
            available = sorted(p.name.removesuffix(".json") for p in resources.files("spawnit").joinpath("assets", "prices").iterdir())
            raise CostError(f"region: {region!r} has no bundled price table; allowed: {', '.join(available)}, or a price file given with --prices")
        return cls(json.loads(path.read_text()), f"bundled {region}.json")

    @classmethod
    def from_file(cls, path: str | Path) -> PriceTable:
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise CostError(f"price file {str(path)!r}: cannot be read as JSON: {error}") from None
        for key in ("region", "as_of", "prices"):
            if key not in document:
                raise CostError(f"price file {str(path)!r}: missing {key!r}; see spawnit/assets/prices/eu-west-3.json for the format")
        return cls(document, str(path))

    def price(self, category: str, item: str | None = None) -> float:
        """A price, or :class:`UnknownPrice` when the table has none."""
        entry = self.categories.get(category)
        if entry is None:
            raise UnknownPrice(f"no {category} price in {self.origin}")
        if item is None:
            return float(entry["value"])
        if item not in entry.get("items", {}):
            raise UnknownPrice(f"{item}: no {category} price in {self.origin}")
        return float(entry["items"][item])

    def source(self, category: str) -> str:
        return self.categories[category]["source"]


ON_PREMISES_GUESTS = ("proxmox_virtual_environment_vm", "proxmox_virtual_environment_container")


def on_premises_size(kind: str, body: Mapping[str, Any]) -> str:
    """What a Proxmox guest takes of its node: vCPUs, memory, disk (no cloud price applies)."""
    cores = (body.get("cpu") or [{}])[0].get("cores", 1)
    memory = (body.get("memory") or [{}])[0].get("dedicated", 512)
    disks = body.get("disk") or []
    disk = disks[0] if isinstance(disks, list) and disks else disks if isinstance(disks, dict) else {}
    where = f" on {disk['datastore_id']}" if disk.get("datastore_id") else ""
    guest = "VM" if kind == "proxmox_virtual_environment_vm" else "LXC container"
    return f"on-premises {guest} on node {body.get('node_name')}: {cores} vCPU, {memory} MB, {disk.get('size', 8)} GB{where}"


class UnknownPrice(LookupError):
    """A resource whose type or size has no price: reported, never counted as zero."""


@dataclass
class LineItem:
    stack: str
    address: str
    kind: str
    detail: str
    monthly_usd: float | None
    problem: str | None = None
    on_premises: bool = False  # runs on one's own hardware (Proxmox): sized, never priced


@dataclass
class StackCost:
    name: str
    items: list[LineItem] = field(default_factory=list)

    @property
    def total_usd(self) -> float:
        return round(sum(item.monthly_usd for item in self.items if item.monthly_usd is not None), 2)

    @property
    def unpriced(self) -> list[LineItem]:
        return [item for item in self.items if item.monthly_usd is None]


# Schedules --------------------------------------------------------------------------------

_DAY_NAMES = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def _days(field_text: str, *, first_number_is_sunday_one: bool) -> list[int]:
    """Day-of-week field -> Monday-based indexes (0 = Monday). Unix cron: 0/7 = Sunday; EventBridge: 1 = Sunday."""
    if field_text in ("*", "?"):
        return list(range(7))
    days: list[int] = []
    for part in field_text.upper().split(","):
        first, _, last = part.partition("-")
        start, end = _day(first, first_number_is_sunday_one), _day(last or first, first_number_is_sunday_one)
        span = (end - start) % 7
        days += [(start + offset) % 7 for offset in range(span + 1)]
    return sorted(set(days))


def _day(token: str, sunday_one: bool) -> int:
    if token in _DAY_NAMES:
        return _DAY_NAMES.index(token)
    if not token.isdigit():
        raise CostError(f"schedule: day {token!r} is not supported; allowed: MON..SUN or numbers")
    number = int(token)
    sunday = 1 if sunday_one else 0
    return (number - sunday - 1) % 7


def weekly_minutes(expression: str) -> list[int]:
    """Minutes of the week (0 = Monday 00:00, local time) a cron expression fires at.

    Accepts Auto Scaling recurrences (``m h * * dow``) and EventBridge ``cron(m h ? * dow *)``.
    The schedules' own time zone keeps local time fixed, so hours per week do not move with daylight saving.
    """
    eventbridge = expression.startswith("cron(")
    fields = expression.removeprefix("cron(").removesuffix(")").split()
    if len(fields) not in (5, 6):
        raise CostError(f"schedule: {expression!r} is not a cron expression this estimate reads")
    minute, hour, day_of_month, month, day_of_week = fields[:5]
    if day_of_month not in ("*", "?") or month != "*" or not minute.isdigit() or not hour.isdigit():
        raise CostError(f"schedule: {expression!r} is not supported; allowed: fixed minute and hour on days of the week")
    return [day * 1440 + int(hour) * 60 + int(minute) for day in _days(day_of_week, first_number_is_sunday_one=eventbridge)]


def average_level(events: Iterable[tuple[int, float]], default: float) -> float:
    """Average over a week of a level that changes at the given (minute of week, new level) events."""
    ordered = sorted(events)
    if not ordered:
        return default
    total = 0.0
    level = ordered[-1][1]  # the week wraps: before the first event, the last one holds
    previous = 0
    for minute, new_level in ordered:
        total += level * (minute - previous)
        previous, level = minute, new_level
    total += level * (MINUTES_PER_WEEK - previous)
    return total / MINUTES_PER_WEEK


# Estimation --------------------------------------------------------------------------------


def _reference(kind: str, key: str, attribute: str) -> str:
    return f"${{{kind}.{key}.{attribute}}}"


@dataclass(frozen=True)
class Machines:
    """What a resource keeps running: on average ``count`` machines of EC2 type ``instance_type``
    (awake share, desired capacity and standby copies included); ``detail`` says how."""

    instance_type: str
    count: float
    detail: str


class StackReader:
    """Reads one synthesized stack: its resources, references, and what its compute keeps running."""

    def __init__(self, name: str, document: Mapping[str, Any]) -> None:
        self.name = name
        self.document = document
        self.resources: Mapping[str, Mapping[str, Any]] = document.get("resource", {})

    def _resolve(self, reference: str) -> tuple[str, Mapping[str, Any]]:
        match = re.fullmatch(r"\$\{(aws_[a-z0-9_]+)\.([A-Za-z0-9_-]+)\.[a-z_]+\}", reference)
        if not match:
            raise CostError(f"stack {self.name}: cannot follow reference {reference!r}")
        return match.group(2), self.resources[match.group(1)][match.group(2)]

    def machines_instance(self, key: str, body: Mapping[str, Any]) -> Machines:
        spot = (body.get("instance_market_options") or {}).get("market_type") == "spot"
        return Machines(body["instance_type"], 1.0, f"{body['instance_type']}{' spot' if spot else ''}")

    def machines_autoscaling_group(self, key: str, body: Mapping[str, Any]) -> Machines:
        """Desired capacity, averaged over the week by the group's scheduled actions."""
        _, template = self._resolve(body["launch_template"]["id"])
        instance_type = template["instance_type"]
        desired = body.get("desired_capacity", body.get("min_size", 0))
        schedules = [
            schedule
            for schedule in self.resources.get("aws_autoscaling_schedule", {}).values()
            if schedule["autoscaling_group_name"] in (_reference("aws_autoscaling_group", key, "name"), body.get("name"))
        ]
        events = [(minute, float(s["desired_capacity"])) for s in schedules for minute in weekly_minutes(s["recurrence"])]
        detail = f"{desired} x {instance_type}"
        if events:
            awake = average_level([(minute, 1.0 if level > 0 else 0.0) for minute, level in events], 1.0) * HOURS_PER_WEEK
            detail += f", awake {awake:.0f} h/week"
        return Machines(instance_type, average_level(events, float(desired)), detail)

    def machines_db_instance(self, key: str, body: Mapping[str, Any]) -> Machines:
        """The instance class (its EC2 equivalent), doubled by a Multi-AZ standby, for the share of the
        week EventBridge Scheduler keeps it started."""
        instance_class = body["instance_class"]
        copies = 2 if body.get("multi_az") else 1
        actions = {"stopDBInstance": 0.0, "startDBInstance": 1.0}
        events = []
        for schedule in self.resources.get("aws_scheduler_schedule", {}).values():
            target = schedule.get("target", {})
            action = target.get("arn", "").rsplit(":", 1)[-1]
            identifier = json.loads(target.get("input") or "{}").get("DbInstanceIdentifier")
            if action in actions and identifier in (_reference("aws_db_instance", key, "identifier"), body.get("identifier")):
                events += [(minute, actions[action]) for minute in weekly_minutes(schedule["schedule_expression"])]
        running = average_level(events, 1.0)
        detail = f"{instance_class} {'Multi-AZ' if copies == 2 else 'Single-AZ'}"
        if events:
            detail += f", running {running * HOURS_PER_WEEK:.0f} h/week"
        return Machines(instance_class.removeprefix("db."), copies * running, detail)

    def machines_elasticache_replication_group(self, key: str, body: Mapping[str, Any]) -> Machines:
        nodes = body.get("num_cache_clusters", 1)
        return Machines(body["node_type"].removeprefix("cache."), float(nodes), f"{nodes} x {body['node_type']}")

    def machines_eks_node_group(self, key: str, body: Mapping[str, Any]) -> Machines:
        instance_type = body["instance_types"][0]
        nodes = body["scaling_config"]["desired_size"]
        spot = body.get("capacity_type") == "SPOT"
        return Machines(instance_type, float(nodes), f"{nodes} x {instance_type}{' spot' if spot else ''} nodes")


class StackEstimator(StackReader):
    """Prices one synthesized stack."""

    def __init__(self, name: str, document: Mapping[str, Any], prices: PriceTable, assumptions: Assumptions) -> None:
        super().__init__(name, document)
        self.prices = prices
        self.assumptions = assumptions
        region = stack_region(document)
        if region is not None and region != prices.region:
            raise CostError(
                f"stack {name}: region {region!r} has no prices in {prices.origin} ({prices.region}); allowed: a price file for {region} given with --prices"
            )

    def estimate(self) -> StackCost:
        cost = StackCost(self.name)
        for kind, instances in sorted(self.resources.items()):
            for key, body in sorted(instances.items()):
                if kind in FREE_TYPES or kind.startswith("docker_") or kind == "proxmox_virtual_environment_file":  # hosts of one's own
                    continue
                if kind in ON_PREMISES_GUESTS:
                    detail = on_premises_size(kind, body)
                    cost.items.append(LineItem(self.name, _construct_path(body) or f"{kind}.{key}", kind, detail, 0.0, on_premises=True))
                    continue
                handler = getattr(self, f"_price_{kind.removeprefix('aws_')}", None)  # kubernetes_* keep their prefix
                address = _construct_path(body) or f"{kind}.{key}"
                if handler is None:
                    cost.items.append(LineItem(self.name, address, kind, "", None, f"resource type {kind} has no price model"))
                    continue
                try:
                    detail, monthly = handler(key, body)
                except UnknownPrice as error:
                    cost.items.append(LineItem(self.name, address, kind, "", None, str(error)))
                    continue
                cost.items.append(LineItem(self.name, address, kind, detail, round(monthly, 2)))
        return cost

    # helpers
    @property
    def month(self) -> float:
        return self.prices.hours_per_month

    def _instance_hour(self, instance_type: str) -> float:
        return self.prices.price("ec2_instance_hour", instance_type)

    # priced types
    def _price_instance(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        hourly = self._instance_hour(body["instance_type"])
        spot = (body.get("instance_market_options") or {}).get("market_type") == "spot"
        if spot:
            hourly *= 1 - self.assumptions.spot_discount
        disk_gb = (body.get("root_block_device") or {}).get("volume_size", 8)
        public_ip = self.prices.price("public_ipv4_hour") if body.get("associate_public_ip_address") else 0.0
        monthly = (hourly + public_ip) * self.month + disk_gb * self.prices.price("ebs_gp3_gb_month")
        detail = f"{body['instance_type']}{' spot' if spot else ''}, {disk_gb} GB gp3{', public IPv4' if public_ip else ''}"
        return detail, monthly

    def _price_autoscaling_group(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        _, template = self._resolve(body["launch_template"]["id"])
        machines = self.machines_autoscaling_group(key, body)
        instance_type, capacity = machines.instance_type, machines.count
        disk_gb = sum(mapping.get("ebs", {}).get("volume_size", 8) for mapping in template.get("block_device_mappings", [])) or 8
        public_ip = any(str(nic.get("associate_public_ip_address")).lower() == "true" for nic in template.get("network_interfaces", []))
        hourly = self._instance_hour(instance_type) + (self.prices.price("public_ipv4_hour") if public_ip else 0.0)
        monthly = capacity * (hourly * self.month + disk_gb * self.prices.price("ebs_gp3_gb_month"))  # volumes go with instances
        detail = f"{machines.detail}, {disk_gb} GB gp3 each{', public IPv4' if public_ip else ''}"
        return detail, monthly

    def _price_nat_gateway(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        gigabytes = self.assumptions.nat_gateway_gb_month
        monthly = self.prices.price("nat_gateway_hour") * self.month + gigabytes * self.prices.price("nat_gateway_gb")
        return f"NAT gateway, {gigabytes:.0f} GB processed", monthly

    def _price_eip(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        return "public IPv4 address", self.prices.price("public_ipv4_hour") * self.month

    def _price_lb(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        if body.get("load_balancer_type", "application") != "application":
            raise UnknownPrice(f"{body.get('load_balancer_type')} load balancer: no price model")
        lcu = self.assumptions.alb_lcu
        monthly = (self.prices.price("alb_hour") + lcu * self.prices.price("alb_lcu_hour")) * self.month
        return f"Application Load Balancer, {lcu:g} LCU", monthly

    def _price_db_instance(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        if body.get("engine") != "postgres":
            raise UnknownPrice(f"engine {body.get('engine')!r}: no RDS price")
        instance_class = body["instance_class"]
        copies = 2 if body.get("multi_az") else 1
        machines = self.machines_db_instance(key, body)
        storage_gb = body.get("allocated_storage", 20)
        compute = self.prices.price("rds_postgres_instance_hour", instance_class) * machines.count * self.month
        storage = copies * storage_gb * self.prices.price("rds_gp3_gb_month")  # billed while stopped too
        secret = self.prices.price("secrets_manager_secret_month") if body.get("manage_master_user_password") else 0.0
        awake, _, schedule = machines.detail.partition(", ")
        detail = f"{awake}, {storage_gb} GB gp3" + (f", {schedule}" if schedule else "")
        if secret:
            detail += ", managed secret"
        return detail, compute + storage + secret

    def _price_elasticache_replication_group(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        machines = self.machines_elasticache_replication_group(key, body)
        return machines.detail, machines.count * self.prices.price("elasticache_node_hour", body["node_type"]) * self.month

    def _price_s3_bucket(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        gigabytes = self.assumptions.s3_gb_month
        return f"{gigabytes:.0f} GB stored", gigabytes * self.prices.price("s3_standard_gb_month")

    def _price_cloudflare_r2_bucket(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        """R2: storage only (no egress fee); the account's free 10 GB-month counted against each bucket."""
        gigabytes = self.assumptions.s3_gb_month
        billed = max(0.0, gigabytes - self.prices.price("r2_free_gb_month"))
        return f"{gigabytes:.0f} GB stored, egress free", billed * self.prices.price("r2_standard_gb_month")

    def _price_secretsmanager_secret(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        return "secret", self.prices.price("secrets_manager_secret_month")

    def _price_ebs_volume(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        if body.get("type", "gp3") != "gp3":
            raise UnknownPrice(f"{body.get('type')} volume: no price model")
        size = body.get("size", 0)
        return f"{size} GB gp3 volume", size * self.prices.price("ebs_gp3_gb_month")

    def _price_kms_key(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        return "customer-managed key", self.prices.price("kms_key_month")

    def _price_cloudwatch_metric_alarm(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        return f"alarm {body.get('metric_name', '')}", self.prices.price("cloudwatch_alarm_month")

    def _price_cloudwatch_log_group(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        gigabytes = self.assumptions.log_gb_month
        return f"{gigabytes:g} GB ingested", gigabytes * self.prices.price("cloudwatch_logs_ingested_gb")

    def _price_ecs_service(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        if body.get("launch_type") != "FARGATE":
            raise UnknownPrice(f"launch type {body.get('launch_type')!r}: only Fargate is priced")
        _, task = self._resolve(body["task_definition"])
        vcpu, memory_gb, tasks = int(task["cpu"]) / 1024, int(task["memory"]) / 1024, body.get("desired_count", 1)
        hourly = vcpu * self.prices.price("fargate_vcpu_hour") + memory_gb * self.prices.price("fargate_gb_hour")
        return f"{tasks} x Fargate task {vcpu:g} vCPU / {memory_gb:g} GB", tasks * hourly * self.month

    def _price_eks_cluster(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        return f"EKS control plane {body.get('version', '')}".rstrip(), self.prices.price("eks_cluster_hour") * self.month

    def _price_eks_node_group(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        machines = self.machines_eks_node_group(key, body)
        hourly = self._instance_hour(machines.instance_type)
        if body.get("capacity_type") == "SPOT":
            hourly *= 1 - self.assumptions.spot_discount
        disk_gb = body.get("disk_size", 20)
        monthly = machines.count * (hourly * self.month + disk_gb * self.prices.price("ebs_gp3_gb_month"))
        return f"{machines.detail}, {disk_gb} GB each", monthly

    def _price_cloudfront_distribution(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        gigabytes, requests = self.assumptions.cdn_gb_month, self.assumptions.cdn_requests_month
        monthly = gigabytes * self.prices.price("cloudfront_gb_out") + requests / 10_000 * self.prices.price("cloudfront_https_10k_requests")
        return f"{gigabytes:g} GB out, {requests:,.0f} HTTPS requests", monthly

    def _price_backup_vault(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        """Snapshots of what the stack's backup selections copy, as large as the databases themselves."""
        gigabytes = 0.0
        for selection in self.resources.get("aws_backup_selection", {}).values():
            for reference in selection.get("resources", []):
                kind, _, _ = reference.removeprefix("${").partition(".")
                if kind != "aws_db_instance":
                    raise UnknownPrice(f"backups of {kind}: no price model")
                gigabytes += self._resolve(reference)[1].get("allocated_storage", 20)
        return f"{gigabytes:g} GB of database snapshots", gigabytes * self.prices.price("backup_rds_snapshot_gb_month")

    def _price_kubernetes_service_v1(self, key: str, body: Mapping[str, Any]) -> tuple[str, float]:
        """A Service of type LoadBalancer makes the cluster create an AWS load balancer (a Network one here)."""
        spec = body.get("spec", [{}])
        spec = spec[0] if isinstance(spec, list) else spec
        if spec.get("type") != "LoadBalancer":
            return "cluster-internal service", 0.0
        monthly = (self.prices.price("nlb_hour") + self.prices.price("nlb_nlcu_hour")) * self.month
        return "Network Load Balancer made by the cluster, 1 NLCU", monthly


def _construct_path(body: Mapping[str, Any]) -> str | None:
    """``fleet/group`` for a resource cdktf synthesized at ``prod/fleet/group``."""
    path = body.get("//", {}).get("metadata", {}).get("path")
    return path.split("/", 1)[1] if path and "/" in path else path


def stack_region(document: Mapping[str, Any]) -> str | None:
    providers = document.get("provider", {}).get("aws", [])
    return providers[0].get("region") if providers else None


def with_nat_gateways(document: Mapping[str, Any]) -> dict[str, Any]:
    """The same stack with a NAT gateway (and its address) in place of each NAT instance.

    NAT instances are found by the ``spawnit:nat`` tag of their fixed network interface.
    """
    changed = copy.deepcopy(dict(document))
    resources = changed.setdefault("resource", {})
    interfaces = resources.get("aws_network_interface", {})
    nat_names = {key: body["tags"][NAT_TAG] for key, body in interfaces.items() if NAT_TAG in body.get("tags", {})}
    groups = resources.get("aws_autoscaling_group", {})
    for interface_key, nat_name in nat_names.items():
        for group_key in [key for key, body in groups.items() if body.get("name") == nat_name]:
            template_reference = groups[group_key]["launch_template"]["id"]
            template_key = template_reference.split(".")[1]
            resources["aws_launch_template"].pop(template_key, None)
            del groups[group_key]
        subnet = interfaces.pop(interface_key)["subnet_id"]
        resources.setdefault("aws_eip", {})[f"{interface_key}-eip"] = {"domain": "vpc"}
        resources.setdefault("aws_nat_gateway", {})[f"{interface_key}-gateway"] = {"subnet_id": subnet}
    return changed


def load_stacks(outdir: Path, names: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """Synthesized stacks in ``outdir`` by name (all of them, or ``names``)."""
    available = {path.parent.name: path for path in sorted(Path(outdir).glob("stacks/*/cdk.tf.json"))}
    if not available:
        raise CostError(f"outdir: {str(outdir)!r} holds no synthesized stack; run 'spawnit synth' first")
    environments = [name for name in DEFAULT_STACKS if name in available]
    wanted = list(names) if names else environments or list(available)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        raise CostError(f"stack: {unknown[0]!r} is not in {outdir}; {did_you_mean(unknown[0], available)}allowed: {', '.join(available)}")
    return {name: json.loads(available[name].read_text()) for name in wanted}


@dataclass
class Report:
    stacks: list[StackCost]
    budget_usd: float
    prices: PriceTable
    assumptions: Assumptions
    compare: dict[str, StackCost] | None = None

    @property
    def total_usd(self) -> float:
        return round(sum(stack.total_usd for stack in self.stacks), 2)

    @property
    def over_budget(self) -> bool:
        return self.total_usd > self.budget_usd

    @property
    def unpriced(self) -> list[LineItem]:
        return [item for stack in self.stacks for item in stack.unpriced]

    def as_dict(self) -> dict[str, Any]:
        return {
            "region": self.prices.region,
            "prices_as_of": self.prices.as_of,
            "prices": self.prices.origin,
            "assumptions": asdict(self.assumptions),
            "budget_usd": self.budget_usd,
            "total_usd": self.total_usd,
            "over_budget": self.over_budget,
            "unpriced": [asdict(item) for item in self.unpriced],
            "stacks": [self._stack_dict(stack) for stack in self.stacks],
        }

    def _stack_dict(self, stack: StackCost) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": stack.name, "total_usd": stack.total_usd, "items": [asdict(item) for item in stack.items]}
        if self.compare:
            other = self.compare[stack.name].total_usd
            entry |= {"nat_gateway_total_usd": other, "nat_gateway_delta_usd": round(other - stack.total_usd, 2)}
        return entry


def estimate(
    stacks: Mapping[str, Mapping[str, Any]],
    *,
    budget_usd: float,
    prices: PriceTable | None = None,
    assumptions: Assumptions | None = None,
    compare_nat_gateway: bool = False,
) -> Report:
    """Estimate every stack; with ``compare_nat_gateway``, also the same stacks with NAT gateways."""
    assumptions = assumptions or Assumptions()
    if prices is None:
        regions = {region for region in map(stack_region, stacks.values()) if region}
        prices = PriceTable.bundled(sorted(regions)[0] if regions else "eu-west-3")
    costs = [StackEstimator(name, document, prices, assumptions).estimate() for name, document in stacks.items()]
    compare = None
    if compare_nat_gateway:
        compare = {name: StackEstimator(name, with_nat_gateways(document), prices, assumptions).estimate() for name, document in stacks.items()}
    return Report(costs, budget_usd, prices, assumptions, compare)


def render(report: Report, console: Any) -> None:
    """Readable tables (rich) for people."""
    from rich.table import Table

    for stack in report.stacks:
        table = Table(title=f"{stack.name}: {stack.total_usd:,.2f} USD / month", title_justify="left")
        table.add_column("resource")
        table.add_column("what")
        table.add_column("USD / month", justify="right")
        for item in sorted(stack.items, key=lambda item: -(item.monthly_usd or 0)):
            amount = "unpriced" if item.monthly_usd is None else "on-premises" if item.on_premises else f"{item.monthly_usd:,.2f}"
            table.add_row(item.address, item.problem or item.detail, amount)
        console.print(table)
    summary = Table(title="Total", title_justify="left")
    summary.add_column("stack")
    summary.add_column("USD / month", justify="right")
    if report.compare:
        summary.add_column("with NAT gateways", justify="right")
        summary.add_column("difference", justify="right")
    for stack in report.stacks:
        row = [stack.name, f"{stack.total_usd:,.2f}"]
        if report.compare:
            other = report.compare[stack.name].total_usd
            row += [f"{other:,.2f}", f"{other - stack.total_usd:+,.2f}"]
        summary.add_row(*row)
    total_row = ["total", f"{report.total_usd:,.2f}"]
    if report.compare:
        other_total = sum(cost.total_usd for cost in report.compare.values())
        total_row += [f"{other_total:,.2f}", f"{other_total - report.total_usd:+,.2f}"]
    summary.add_row(*total_row, style="bold")
    console.print(summary)
    verdict = "OVER" if report.over_budget else "within"
    console.print(f"budget: {report.budget_usd:,.2f} USD / month: {verdict} budget ({report.total_usd / report.budget_usd:.0%} used)")
    console.print(f"prices: {report.prices.region}, as of {report.prices.as_of} ({report.prices.origin}); assumptions: {report.assumptions.describe()}")
    for item in report.unpriced:
        console.print(f"[yellow]unpriced[/yellow] {item.stack} {item.address}: {item.problem}")
