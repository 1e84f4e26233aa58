"""The ``spawnit`` command: synthesize, list, plan, deploy, destroy, bootstrap remote state."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from .config import ENVIRONMENTS, ConfigError, load_all_specs, load_spec

DEFAULT_OUTDIR = Path("cdktf.out")
EXIT_USAGE = 2
EXIT_NO_TOFU = 127


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spawnit", description="Infrastructure as code for everyone, applied by OpenTofu.")
    parser.add_argument("--config", metavar="FILE", help="configuration file (TOML or JSON); default: $SPAWNIT_CONFIG or ./spawnit.toml")
    parser.add_argument("--local-state", action="store_true", help="keep state in a local file instead of the S3 backend")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    synth = commands.add_parser("synth", help="synthesize every default stack, or one service instance (--service), into cdktf.out")
    synth.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR)
    synth.add_argument("--service", help="a catalog service: synthesize one instance of it into its own stack")
    synth.add_argument("--target", choices=("docker", "aws"), help="where the instance runs (default: the parameters' target, docker)")
    synth.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a parameter (repeatable; JSON values allowed)")
    synth.add_argument("--params", type=Path, metavar="FILE", help="parameters from a JSON or TOML file (--set wins)")
    synth.add_argument("--client", default="local", help="client owning the instance (stack name: CLIENT-INSTANCE)")
    synth.add_argument("--instance", help="instance name (default: the service name)")

    catalog = commands.add_parser("catalog", help="list the catalog's services, or 'catalog show NAME' for a parameter schema")
    catalog.add_argument("words", nargs="*", metavar="show NAME")
    catalog.add_argument("--format", choices=("table", "json"), default="table")

    commands.add_parser("list", help="list the stacks with their environment, architecture and state location")

    for action, verb, help_text in (
        ("plan", "plan", "show what OpenTofu would change in ENV"),
        ("deploy", "apply", "apply ENV with OpenTofu"),
        ("destroy", "destroy", "destroy everything in ENV"),
    ):
        command = commands.add_parser(action, help=help_text)
        command.add_argument("environment", metavar="ENV", help=f"one of: {', '.join(ENVIRONMENTS)}")
        command.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR)
        command.add_argument("--no-synth", action="store_true", help="use the stack already in --outdir")
        if verb != "plan":
            command.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
        command.set_defaults(tofu_action=verb)

    cost = commands.add_parser("cost", help="monthly cost estimate of the synthesized stacks, against the budget")
    cost.add_argument("stacks", nargs="*", metavar="STACK", help="stacks to estimate (default: dev, preprod and prod)")
    cost.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR)
    cost.add_argument("--format", choices=("table", "json"), default="table")
    cost.add_argument("--budget", type=float, help="monthly budget in USD (default: monthly_budget_usd of the configuration)")
    cost.add_argument("--fail-over-budget", action="store_true", help="exit 1 when over budget or when a resource has no price")
    cost.add_argument("--compare", choices=("nat-gateway",), help="also price the same stacks with NAT gateways instead of NAT instances")
    cost.add_argument("--prices", type=Path, help="price table (JSON) for a region without a bundled one")
    cost.add_argument("--spot-discount", type=float, default=0.70, help="spot discount off on-demand (default 0.70)")
    cost.add_argument("--nat-gateway-gb", type=float, default=100.0, help="GB a month through each NAT gateway (default 100)")

    serve = commands.add_parser("serve", help="run the web API and UI")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")

    bootstrap = commands.add_parser("bootstrap", help="create the remote state bucket and lock table (idempotent)")
    bootstrap.add_argument("--endpoint-url", help="S3/DynamoDB endpoint (an S3-compatible service or a local emulator)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
    arguments = _parser().parse_args(argv)
    spec_options = {"config_file": arguments.config}
    if arguments.local_state:
        spec_options["overrides"] = {"state_backend": "local"}
    try:
        if arguments.command == "synth" and arguments.service:
            return _synth_service(arguments)
        if arguments.command == "synth":
            return _synth(arguments.outdir, spec_options)
        if arguments.command == "catalog":
            return _catalog(arguments)
        if arguments.command == "list":
            return _list(spec_options)
        if arguments.command == "bootstrap":
            return _bootstrap(arguments.endpoint_url, spec_options)
        if arguments.command == "cost":
            return _cost(arguments, spec_options)
        if arguments.command == "serve":
            return _serve(arguments.host, arguments.port)
        return _tofu(arguments, spec_options)
    except ConfigError as error:
        print(f"spawnit: {error}", file=sys.stderr)
        return EXIT_USAGE


def _synth(outdir: Path, spec_options: dict) -> int:
    specs = {spec.name: spec for spec in load_all_specs(**spec_options)}  # validate before the slow import
    from .stacks import build_app

    build_app(outdir, specs=specs).synth()
    for name in specs:
        print(f"synthesized {outdir / 'stacks' / name / 'cdk.tf.json'}")
    return 0


def _catalog(arguments: argparse.Namespace) -> int:
    from .services import ParameterError, all_services, catalog_document, get_service

    words = arguments.words
    if words and (words[0] != "show" or len(words) != 2):
        print(f"spawnit: catalog: {' '.join(words)!r} is not allowed; allowed: 'spawnit catalog' or 'spawnit catalog show NAME'", file=sys.stderr)
        return EXIT_USAGE
    if words:
        try:
            print(json.dumps(get_service(words[1]).schema(), indent=2))
        except ParameterError as error:
            print(f"spawnit: {error}", file=sys.stderr)
            return EXIT_USAGE
        return 0
    if arguments.format == "json":
        print(json.dumps(catalog_document(), indent=2))
        return 0
    print(f"{'SERVICE':<12} {'CATEGORY':<10} DESCRIPTION")
    for service in all_services().values():
        print(f"{service.name:<12} {service.category:<10} {service.description}")
    return 0


def _service_values(arguments: argparse.Namespace) -> dict:
    values: dict = {}
    if arguments.params:
        text = arguments.params.read_text()
        try:
            values = json.loads(text) if arguments.params.suffix == ".json" else tomllib.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
            raise ValueError(f"--params {arguments.params}: not valid {arguments.params.suffix.lstrip('.') or 'TOML'}: {error}") from None
    for assignment in arguments.set:
        key, separator, raw = assignment.partition("=")
        if not separator or not key:
            raise ValueError(f"--set: {assignment!r} is not allowed; allowed: KEY=VALUE")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    if arguments.target:
        values["target"] = arguments.target
    return values


def _synth_service(arguments: argparse.Namespace) -> int:
    from .services import ParameterError, get_service
    from .services.base import instance_stack_name

    try:
        service = get_service(arguments.service)
        parameters = service.checked(_service_values(arguments))  # before anything is written
        instance = arguments.instance or service.name
        name = instance_stack_name(arguments.client, instance)
    except (ParameterError, ValueError, OSError) as error:
        print(f"spawnit: {error}", file=sys.stderr)
        return EXIT_USAGE
    from cdktf import App

    from .services.stack import ServiceStack

    app = App(outdir=str(arguments.outdir))
    ServiceStack(app, service=service, parameters=parameters, client=arguments.client, instance=instance)
    app.synth()
    print(f"synthesized {arguments.outdir / 'stacks' / name / 'cdk.tf.json'} ({service.name} on {parameters.target})")
    return 0


def _alert_recipients(spec) -> str:
    if not spec.alerts:
        return "-"
    if not spec.alert_emails:
        return "NO RECIPIENT (warning)"
    return f"{len(spec.alert_emails)} e-mail(s)"


def _list(spec_options: dict) -> int:
    specs = load_all_specs(**spec_options)
    print(f"{'STACK':<10} {'ARCHITECTURE':<13} {'REGION':<11} {'NAT':<9} {'ALERTS':<22} STATE")
    for spec in specs:
        state = "local file" if spec.state_backend == "local" else f"s3://{spec.resolved_state_bucket}/{spec.state_key}"
        nat = spec.nat if spec.architecture == "ha" else "-"
        print(f"{spec.stack_name:<10} {spec.architecture:<13} {spec.region:<11} {nat:<9} {_alert_recipients(spec):<22} {state}")
    return 0


def _tofu(arguments: argparse.Namespace, spec_options: dict) -> int:
    from .tofu import TofuNotFound, find_tofu, run_action

    environment = arguments.environment
    if environment not in ENVIRONMENTS:
        print(f"spawnit: ENV: {environment!r} is not allowed; allowed: {', '.join(ENVIRONMENTS)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        find_tofu()
    except TofuNotFound as error:
        print(f"spawnit: {error}", file=sys.stderr)
        return EXIT_NO_TOFU
    if not arguments.no_synth:
        _synth(arguments.outdir, spec_options)
    stack_dir = arguments.outdir / "stacks" / load_spec(environment, **spec_options).stack_name
    try:
        return run_action(stack_dir, arguments.tofu_action, auto_approve=getattr(arguments, "auto_approve", False))
    except FileNotFoundError as error:
        print(f"spawnit: {error}", file=sys.stderr)
        return EXIT_USAGE


def _cost(arguments: argparse.Namespace, spec_options: dict) -> int:
    from rich.console import Console

    from .cost import Assumptions, CostError, PriceTable, estimate, load_stacks, render

    try:
        budget = arguments.budget if arguments.budget is not None else load_spec("prod", **spec_options).monthly_budget_usd
        if budget <= 0:
            raise CostError(f"--budget: {budget} is not allowed; allowed: a positive amount")
        report = estimate(
            load_stacks(arguments.outdir, arguments.stacks),
            budget_usd=budget,
            prices=PriceTable.from_file(arguments.prices) if arguments.prices else None,
            assumptions=Assumptions(spot_discount=arguments.spot_discount, nat_gateway_gb_month=arguments.nat_gateway_gb),
            compare_nat_gateway=arguments.compare == "nat-gateway",
        )
    except CostError as error:
        print(f"spawnit: {error}", file=sys.stderr)
        return EXIT_USAGE
    if arguments.format == "json":
        print(json.dumps(report.as_dict(), indent=2))
    else:
        render(report, Console(width=140))
    if arguments.fail_over_budget and (report.over_budget or report.unpriced):
        return 1
    return 0


def _serve(host: str, port: int) -> int:
    if not 1 <= port <= 65535:
        print(f"spawnit: --port: {port} is not allowed; allowed: 1 to 65535", file=sys.stderr)
        return EXIT_USAGE
    import uvicorn

    from .api import create_app

    uvicorn.run(create_app(), host=host, port=port, log_level="info")
    return 0


def _bootstrap(endpoint_url: str | None, spec_options: dict) -> int:
    from .bootstrap import BootstrapError, StateTarget, bootstrap_state

    targets = {
        StateTarget(bucket=spec.resolved_state_bucket, lock_table=spec.resolved_state_lock_table, region=spec.region)
        for spec in load_all_specs(**spec_options)
        if spec.state_backend == "s3"
    }
    try:
        for target in sorted(targets, key=lambda target: (target.region, target.bucket)):
            for line in bootstrap_state(target, endpoint_url=endpoint_url):
                print(line)
    except BootstrapError as error:
        print(f"spawnit: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
