"""The ``spawnit`` command: synthesize, list, plan, deploy, destroy, bootstrap remote state."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
import traceback
import typing
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .applications import Application, GreenLeaf, find_stack, load_applications, third_party
from .config import ConfigError
from .services.base import TARGETS
from .stacks.environment_settings import ENVIRONMENTS, EnvironmentSpec, load_spec, readiness_warnings, size_warnings
from .stacks.platform_settings import PlatformSettings, load_platform_settings
from .stacks.spotilike_settings import SpotilikeSpec, load_spotilike_spec
from .shared import did_you_mean

DEFAULT_OUTDIR = Path("cdktf.out")
EXIT_USAGE = 2
EXIT_NO_TOFU = 127
_EXPECTED = (ConfigError, OSError)  # failures whose message says everything: no --debug hint


MAX_WORKER_CONCURRENCY = 32


class _Version(argparse.Action):
    """``--version``: SpawnIt's version, then which engine it runs (found as jobs find it)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from .tofu import describe_engine

        print(f"spawnit {__version__}\n{describe_engine()}")
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spawnit", description="Infrastructure as code for everyone, applied by OpenTofu.")
    parser.add_argument("--version", action=_Version, help="show SpawnIt's version and the engine jobs run (OpenTofu or Terraform), then exit")
    parser.add_argument("--config", metavar="FILE", help="configuration file (TOML or JSON); default: $SPAWNIT_CONFIG or ./spawnit.toml")
    parser.add_argument(
        "--local-state",
        action="store_true",
        help="keep state in a local file instead of the S3 backend: for the environment named by plan/deploy/destroy, every environment for synth and list",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error, not only its message")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    outdir_help = "folder of the synthesized stacks (default: cdktf.out)"
    force_help = "synthesize even if the inputs have not changed since the last synthesis"

    synth = commands.add_parser("synth", help="synthesize every default stack, or one service instance (--service), into cdktf.out")
    synth.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR, help=outdir_help)
    synth.add_argument("--force", action="store_true", help=force_help)
    synth.add_argument("--service", help="a catalog service: synthesize one instance of it into its own stack, added to the outdir's manifest")
    synth.add_argument("--target", choices=TARGETS, help="where the instance runs (default: the parameters' target, docker)")
    synth.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a parameter (repeatable; JSON values allowed; lists as a,b)")
    synth.add_argument("--params", type=Path, metavar="FILE", help="parameters from a JSON or TOML file (--set wins)")
    synth.add_argument("--client", default="local", help="client owning the instance (stack name: CLIENT-INSTANCE; default: local)")
    synth.add_argument("--instance", help="instance name (default: the service name)")

    catalog = commands.add_parser(
        "catalog", help="the catalog (built-in templates and the store's): list it, show a service, check or add a template file"
    )
    catalog.add_argument(
        "words", nargs="*", metavar="[show NAME | versions NAME | check FILE | add FILE | schema]",
        help="show NAME: a service's parameter schema; versions NAME: its versions; check FILE: check a template; "
        "add FILE: publish a template to the store (SPAWNIT_S3_* or SPAWNIT_DATA_DIR); deprecate NAME VERSION NOTE: mark a version "
        "not to use any more ('' clears it); schema: the template format's JSON Schema",
    )
    catalog.add_argument("--version", dest="service_version", help="with show: that version of the service (default: its current one)")
    catalog.add_argument("--format", choices=("table", "json"), default="table", help="table for people, json for machines (default: table)")

    listing = commands.add_parser("list", help="every stack, grouped by application, with what it is and where its state lives")
    listing.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR, help=outdir_help + "; its instance stacks (synth --service) are listed too")

    for action, verb, help_text in (
        ("plan", "plan", "show what OpenTofu would change in STACK"),
        ("deploy", "apply", "apply STACK with OpenTofu"),
        ("destroy", "destroy", "destroy everything in STACK"),
    ):
        command = commands.add_parser(action, help=help_text)
        command.add_argument(
            "environment", metavar="STACK",
            help=f"any stack of 'spawnit list': {', '.join(ENVIRONMENTS)}, spotilike, local, platform-network, ..., or an instance stack made by 'synth --service'",
        )
        command.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR, help=outdir_help)
        command.add_argument("--no-synth", action="store_true", help="use the stack already in --outdir as it is")
        command.add_argument("--force", action="store_true", help=force_help)
        backend = command.add_mutually_exclusive_group()
        backend.add_argument("--reconfigure", action="store_true", help="after a backend change: start from the new backend's state (tofu init -reconfigure)")
        backend.add_argument("--migrate-state", action="store_true", help="after a backend change: copy the state to the new backend (tofu init -migrate-state)")
        if verb != "plan":
            command.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
        else:
            command.add_argument(
                "--format", choices=("text", "json"), default="text",
                help="text: the engine's own output; json: the plan as a reviewer reads it (resources by action, attributes before and after, "
                "sensitive values masked) on stdout, the engine's output on stderr (default: text)",
            )
        command.set_defaults(tofu_action=verb)

    cost = commands.add_parser("cost", help="monthly cost estimate of the synthesized stacks, against the budget")
    cost.add_argument("stacks", nargs="*", metavar="STACK", help="stacks to estimate, of one application or several (default: dev, preprod and prod)")
    cost.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR, help=outdir_help)
    cost.add_argument("--format", choices=("table", "json"), default="table", help="table for people, json for machines (default: table)")
    cost.add_argument("--budget", type=float, help="monthly budget in USD (default: the stacks' application's monthly_budget_usd, GreenLeaf's prod one for GreenLeaf)")
    cost.add_argument("--fail-over-budget", action="store_true", help="exit 1 when over budget or when a resource has no price")
    cost.add_argument("--compare", choices=("nat-gateway",), help="also price the same stacks with NAT gateways instead of NAT instances")
    cost.add_argument("--prices", type=Path, help="price table (JSON) for a region without a bundled one")
    cost.add_argument("--spot-discount", type=float, default=0.70, help="spot discount off on-demand (default 0.70)")
    cost.add_argument("--nat-gateway-gb", type=float, default=100.0, help="GB a month through each NAT gateway (default 100)")

    footprint = commands.add_parser("footprint", help="monthly greenhouse-gas footprint of the synthesized stacks (Boavizta)")
    footprint.add_argument("stacks", nargs="*", metavar="STACK", help="stacks to estimate (default: dev, preprod and prod)")
    footprint.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR, help=outdir_help)
    footprint.add_argument("--format", choices=("table", "json"), default="table", help="table for people, json for machines (default: table)")
    footprint.add_argument("--load", type=float, default=50.0, help="average CPU load of the machines, percent (default 50)")

    check = commands.add_parser("check", help="is every declared network flow of the synthesized stacks allowed end to end (rules and routes)?")
    check.add_argument("stacks", nargs="*", metavar="STACK", help="stacks to check (default: every stack in --outdir)")
    check.add_argument("--outdir", type=Path, default=DEFAULT_OUTDIR, help=outdir_help)

    serve = commands.add_parser("serve", help="run the web API and UI")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument(
        "--worker-concurrency",
        type=int,
        default=2,
        help="with SPAWNIT_REDIS_URL: queued jobs this process runs at once, 0 for an API-only replica (default 2)",
    )

    worker = commands.add_parser("worker", help="run queued jobs from Redis (SPAWNIT_REDIS_URL), any number of workers on any host")
    worker.add_argument("--concurrency", type=int, default=2, help="jobs run at once (default 2)")
    worker.add_argument("--metrics-port", type=int, help="serve this worker's Prometheus metrics on this port (default: none)")

    audit = commands.add_parser("audit", help="the platform's audit trail from its store (SPAWNIT_S3_* or SPAWNIT_DATA_DIR), newest first")
    for name, help_text in (
        ("client", "only this client's records"),
        ("instance", "only this instance's records"),
        ("subject", "only what this subject did"),
        ("action", "an action (job.apply), or a family ending in a dot (job.)"),
        ("outcome", "succeeded, refused, rejected, failed or cancelled"),
        ("since", "ISO 8601 time, inclusive (2026-12-07T08:00:00Z)"),
        ("until", "ISO 8601 time, inclusive"),
    ):
        audit.add_argument(f"--{name}", help=help_text)
    audit.add_argument("--limit", type=int, default=50, help="records to print, 1-500 (default 50)")
    audit.add_argument("--format", choices=("table", "jsonl", "csv"), default="table", help="table for people; jsonl or csv for machines (default: table)")

    bootstrap = commands.add_parser("bootstrap", help="create the remote state bucket and lock table (idempotent)")
    bootstrap.add_argument("--endpoint-url", help="S3/DynamoDB endpoint (an S3-compatible service or a local emulator)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        return _dispatch(arguments)
    except KeyboardInterrupt:
        print("spawnit: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every failure reaches the user as one line
        code, message = _failure(error)
        if arguments.debug:
            traceback.print_exc()
        elif code == 1 and not isinstance(error, _EXPECTED):
            message += " (run with --debug for the traceback)"
        print(f"spawnit: {message}", file=sys.stderr)
        return code


def _failure(error: Exception) -> tuple[int, str]:
    """Exit code and one-line message of a failure."""
    from .services import ParameterError
    from .tofu import TofuNotFound

    if isinstance(error, (ConfigError, ParameterError)):
        return EXIT_USAGE, str(error)
    if isinstance(error, TofuNotFound):
        return EXIT_NO_TOFU, str(error)
    if type(error).__module__.startswith("botocore"):
        return 1, f"AWS: {error}"
    if isinstance(error, OSError):
        return 1, f"{error.strerror or error}{f': {error.filename!r}' if getattr(error, 'filename', None) else ''}"
    return 1, f"{type(error).__name__}: {error}"


def _dispatch(arguments: argparse.Namespace) -> int:
    spec_options: dict = {"config_file": arguments.config}
    if arguments.command == "synth" and arguments.service:
        return _synth_service(arguments)
    if arguments.command == "list":  # every application's settings checked, each warning said once
        return _list(load_applications(config_file=arguments.config, local_state=arguments.local_state), arguments.outdir)
    if arguments.command in ("synth", "bootstrap"):  # --local-state: every environment
        specs = _specs(spec_options, local_state=ENVIRONMENTS if arguments.local_state else ())
        if arguments.command == "synth":
            _synth(arguments.outdir, specs, config_file=arguments.config, force=arguments.force)
            return 0
        return _bootstrap(arguments.endpoint_url, specs, load_spotilike_spec(config_file=arguments.config))
    if arguments.command == "catalog":
        return _catalog(arguments)
    if arguments.command == "cost":
        return _cost(arguments, spec_options)
    if arguments.command == "footprint":
        return _footprint(arguments)
    if arguments.command == "check":
        return _check(arguments)
    if arguments.command == "serve":
        return _serve(arguments.host, arguments.port, arguments.worker_concurrency)
    if arguments.command == "worker":
        return _worker(arguments.concurrency, arguments.metrics_port)
    if arguments.command == "audit":
        return _audit(arguments)
    return _tofu(arguments, spec_options)


def _specs(spec_options: dict, *, local_state: Sequence[str] = (), warn: bool = True) -> dict[str, EnvironmentSpec]:
    """Every environment's spec, validated (before anything slow); ``local_state`` names the
    environments whose state is a local file for this run. Size warnings go to stderr."""
    specs = {}
    for name in ENVIRONMENTS:
        overrides = {"state_backend": "local"} if name in local_state else None
        specs[name] = load_spec(name, overrides=overrides, **spec_options)
    for spec in specs.values() if warn else ():
        _warn(size_warnings(spec))
    return specs


def _digest(specs: dict[str, EnvironmentSpec], platform: PlatformSettings, spotilike: SpotilikeSpec, config_file: str | None) -> str:
    """The inputs of a synthesis: every application's settings, SpawnIt's code, the bindings' versions."""
    from . import synthcache

    return synthcache.fingerprint([*specs.values(), platform, spotilike], applications=third_party(config_file=config_file))


def _synth_only(
    outdir: Path, specs: dict[str, EnvironmentSpec], applications: list[Application], owner: Application, name: str, *, config_file: str | None, force: bool = False
) -> None:
    """Synthesize the stack ``name`` alone (with the stacks of its application it refers to), unless
    ``outdir`` holds it from the same inputs; the other stacks of ``outdir`` are left as they are.
    ``applications``: every application, its settings read already (the digest covers them all)."""
    import tempfile

    from . import synthcache
    from .progress import Progress

    progress = Progress()
    loaded = {application.name: application for application in applications}
    digest = _digest(specs, loaded["platform"].settings, loaded["spotilike"].spec, config_file)
    if not force and synthcache.cached_stack(outdir, digest, name):
        progress.note(f"{outdir / 'stacks' / name} is up to date (inputs unchanged; --force synthesizes anew)")
        return
    with progress.step("loading the provider bindings"):
        from cdktf import App

        from .reachability import require_reachable
    with tempfile.TemporaryDirectory(prefix="spawnit-synth-") as folder, progress.step(f"synthesizing {name}"):
        app = App(outdir=folder)
        if isinstance(owner, GreenLeaf):  # this environment alone, with this run's settings (--local-state)
            from .stacks import ENVIRONMENT_STACKS

            ENVIRONMENT_STACKS[name](app, specs[name])
        else:
            owner.build(app)
        app.synth()
        require_reachable(Path(folder), list(synthcache.stacks_in_manifest(Path(folder))))
        written = synthcache.copy_stacks(Path(folder), outdir)
    synthcache.record_some(outdir, digest, written)
    print(f"synthesized {', '.join(written)} into {outdir}")


def _synth(outdir: Path, specs: dict[str, EnvironmentSpec], *, config_file: str | None, force: bool = False) -> list[str]:
    """Synthesize every default stack into ``outdir``, unless it already holds a synthesis of the
    same inputs. Stacks of service instances already in ``outdir`` stay in its manifest."""
    from . import synthcache
    from .progress import Progress

    progress = Progress()
    platform = load_platform_settings(config_file=config_file)
    spotilike = load_spotilike_spec(config_file=config_file)
    digest = _digest(specs, platform, spotilike, config_file)
    cached = None if force else synthcache.cached_stacks(outdir, digest)
    if cached is not None:
        progress.note(f"{outdir} is up to date ({len(cached)} stacks, inputs unchanged; --force synthesizes anew)")
        return cached
    with progress.step("loading the provider bindings"):
        from .stacks.synthesis import synthesize
    synthcache.forget(outdir)
    with progress.step("synthesizing the default stacks"):
        synthesize(outdir.resolve(), specs=specs, platform=platform, spotilike=spotilike)  # absolute: the runtime has its own cwd
    kept = set(os.listdir(synthcache.instances_home(outdir))) if synthcache.instances_home(outdir).is_dir() else set()
    written = [name for name in synthcache.stacks_in_manifest(outdir) if name not in kept]  # synthesize() put the kept ones back
    synthcache.record(outdir, digest, written)
    for name in written:
        print(f"synthesized {outdir / 'stacks' / name / 'cdk.tf.json'}")
    print(f"synthesized {len(written)} stacks into {outdir}" + (f" (kept {len(kept)} instance stacks)" if kept else ""))
    return list(written)


CATALOG_USAGE = ("'spawnit catalog', 'catalog show NAME [--version V]', 'catalog versions NAME', 'catalog check FILE', 'catalog add FILE', "
                 "'catalog deprecate NAME VERSION NOTE' ('' clears it) or 'catalog schema'")


def store_catalog():
    """The catalog a command sees: the built-in templates, the Python classes and the store's templates
    (the store ``spawnit serve`` uses: SPAWNIT_S3_* or SPAWNIT_DATA_DIR, default ./spawnit-data)."""
    from .api.store import store_from_environment
    from .services.catalog import Catalog

    return Catalog(store_from_environment().objects)


def _catalog(arguments: argparse.Namespace) -> int:
    from .services import ParameterError, catalog_document
    from .services.template import InvalidTemplate, format_schema, load_template

    words = arguments.words
    shapes = {(): 0, ("show",): 1, ("versions",): 1, ("check",): 1, ("add",): 1, ("deprecate",): 3, ("schema",): 0}
    expected = shapes.get(tuple(words[:1]))  # how many words follow the subcommand
    if expected is None or (words and len(words) - 1 != expected):
        print(f"spawnit: catalog: {' '.join(words)!r} is not allowed; allowed: {CATALOG_USAGE}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if words and words[0] == "schema":
            print(json.dumps(format_schema(), indent=2))
            return 0
        if words and words[0] in ("check", "add"):
            path = Path(words[1])
            if not path.is_file():
                raise ParameterError(f"FILE: {words[1]!r} does not exist; allowed: a template file (.yaml, .yml or .json)")
            if words[0] == "check":
                loaded = load_template(path.read_bytes(), str(path))
                print(f"{path}: {loaded.name} {loaded.version} is a valid template (sha256 {loaded.sha256})")
                return 0
            published = store_catalog().publish(path.read_bytes(), path.name, by=os.environ.get("USER") or "spawnit catalog add")
            print(f"published {published.name} {published.version} as {published.source} (sha256 {published.sha256})")
            return 0
        catalog = store_catalog()
        if words and words[0] == "deprecate":
            done = catalog.deprecate(words[1], words[2], words[3] or None, by=os.environ.get("USER") or "spawnit catalog deprecate")
            print(f"{done['service']} {done['version']}: " + (f"deprecated: {done['deprecated']}" if done["deprecated"] else "no longer deprecated"))
            return 0
        if words and words[0] == "show":
            print(json.dumps(catalog.get(words[1], arguments.service_version).schema(), indent=2))
            return 0
        if words and words[0] == "versions":
            for version, service in catalog.versions(words[1]).items():
                note = catalog.deprecation(service)
                print(f"{version:<10} {service.sha256 or 'class':<64}  {('deprecated: ' + note) if note else ''}".rstrip())
            return 0
        document = catalog_document(catalog)
    except (ParameterError, InvalidTemplate) as error:
        print(f"spawnit: {error}", file=sys.stderr)
        return EXIT_USAGE
    if arguments.format == "json":
        print(json.dumps(document, indent=2))
        return 0
    print(f"{'SERVICE':<12} {'VERSION':<9} {'CATEGORY':<10} DESCRIPTION")
    for service in document["services"]:
        print(f"{service['name']:<12} {service['version']:<9} {service['category']:<10} {service['description']}")
    for broken in document["broken"]:  # left out, said: the rest of the catalog works
        print(f"spawnit: catalog: {broken['source']} is left out: {'; '.join(broken['problems'])}", file=sys.stderr)
    return 0


def _is_list_field(model: type, key: str) -> bool:
    field = model.model_fields.get(key)
    if field is None:
        return False
    kinds = [field.annotation, *typing.get_args(field.annotation)]
    return any(typing.get_origin(kind) in (list, tuple) for kind in kinds)


def _service_values(arguments: argparse.Namespace, parameters_model: type) -> dict:
    values: dict = {}
    if arguments.params:
        if not arguments.params.is_file():
            raise ValueError(f"--params: {str(arguments.params)!r} does not exist; allowed: a .json or .toml file")
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
            values[key] = [item.strip() for item in raw.split(",") if item.strip()] if _is_list_field(parameters_model, key) else raw
    if arguments.target:
        values["target"] = arguments.target
    return values


def _synth_service(arguments: argparse.Namespace) -> int:
    from .services import ParameterError
    from .services.base import instance_stack_name

    try:
        service = store_catalog().get(arguments.service)
        parameters = service.checked(_service_values(arguments, service.Parameters))  # before anything is written
        instance = arguments.instance or service.name
        name = instance_stack_name(arguments.client, instance)
    except (ParameterError, ValueError, OSError) as error:
        print(f"spawnit: {error}", file=sys.stderr)
        return EXIT_USAGE
    import tempfile

    from . import synthcache
    from .progress import Progress

    progress = Progress()
    with progress.step("loading the provider bindings"):
        from cdktf import App

        from .reachability import require_reachable
        from .services.stack import ServiceStack
    with tempfile.TemporaryDirectory(prefix="spawnit-synth-") as folder:
        with progress.step(f"synthesizing {name}"):
            app = App(outdir=folder)
            ServiceStack(app, service=service, parameters=parameters, client=arguments.client, instance=instance)
            app.synth()
            require_reachable(Path(folder), [name])
        # Into the outdir beside the default stacks: its manifest gains this stack and keeps the others.
        entries = synthcache.copy_stacks(Path(folder), arguments.outdir)
        synthcache.keep_instance(arguments.outdir, name, entries[name])  # put back by every later synthesis
    print(f"synthesized {arguments.outdir / 'stacks' / name / 'cdk.tf.json'} ({service.name} on {parameters.target})")
    return 0


def _alert_recipients(spec) -> str:
    if not spec.alerts:
        return "no alerts"
    if not spec.alert_emails:
        return "alerts: NO RECIPIENT (warning)"
    return f"alerts: {len(spec.alert_emails)} e-mail(s)"


def _list(applications: list[Application], outdir: Path) -> int:
    """Every stack, grouped by application; the outdir's instance stacks (synth --service) after them."""
    row = "  {:<26} {:<64} {}"
    known = set()
    for application in applications:
        print(f"{application.name}: {application.title}")
        print(row.format("STACK", "WHAT", "STATE"))
        for entry in application.stacks():
            summary = entry.summary
            if isinstance(application, GreenLeaf):  # who its alarms reach, said beside the stack
                summary += f", {_alert_recipients(application.specs[entry.name])}"
            print(row.format(entry.name, summary, entry.state))
            known.add(entry.name)
        print()
    from . import synthcache

    instances = sorted(name for name in synthcache.stacks_in_manifest(outdir) if name not in known)
    if instances:
        print(f"instances: made by 'spawnit synth --service' in {outdir}")
        for name in instances:
            print(row.format(name, "a catalog service's instance", "local file"))
        print()
    from .tofu import describe_engine

    print(describe_engine())
    for application in applications:
        _warn(application.warnings())
    return 0


def _warn(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"spawnit: warning: {warning}", file=sys.stderr)


def _tofu(arguments: argparse.Namespace, spec_options: dict) -> int:
    """plan, deploy or destroy one stack of any application (or an instance stack of the outdir)."""
    from . import synthcache
    from .tofu import backend_change, configured_backend, find_tofu, run_action

    name = arguments.environment
    greenleaf = name in ENVIRONMENTS
    if arguments.local_state and not greenleaf:
        raise ConfigError(f"--local-state: applies to GreenLeaf's {', '.join(ENVIRONMENTS)}; allowed for {name!r}: its application's own state_backend setting")
    applications = load_applications(config_file=arguments.config)  # every application's settings checked before anything slow
    instances = list(synthcache.stacks_in_manifest(arguments.outdir))
    owner = find_stack(applications, name, instances)
    specs = _specs(spec_options, local_state=(name,) if arguments.local_state else (), warn=greenleaf)  # the named stack only
    if greenleaf:
        _warn(readiness_warnings(specs[name]))
    elif owner is not None:
        _warn(owner.warnings())
    find_tofu()
    stack_dir = arguments.outdir / "stacks" / (specs[name].stack_name if greenleaf else name)
    if arguments.no_synth or owner is None:  # an instance stack is synthesized by 'synth --service' only
        if not (stack_dir / "cdk.tf.json").is_file():
            raise ConfigError(f"--no-synth: {str(stack_dir)!r} has no cdk.tf.json; run without --no-synth to synthesize it")
        synthesized, _ = configured_backend(stack_dir)
        if greenleaf and synthesized != specs[name].state_backend:
            raise ConfigError(
                f"--no-synth: {stack_dir} was synthesized with the {synthesized} backend but this run asks for {specs[name].state_backend}; "
                "run without --no-synth to synthesize it again"
            )
    else:  # this stack alone (and what it refers to), unless it is there from the same inputs
        _synth_only(arguments.outdir, specs, applications, owner, name, config_file=arguments.config, force=arguments.force)
    init_extra = ["-reconfigure"] if arguments.reconfigure else ["-migrate-state"] if arguments.migrate_state else []
    change = backend_change(stack_dir)
    if change and not init_extra:
        raise ConfigError(
            f"{name}: the state backend changed since the last init ({change}); "
            "rerun with --migrate-state to copy the state to the new backend, or --reconfigure to start from the new backend's state"
        )
    if getattr(arguments, "format", "text") == "json":
        from .plandiff import readable
        from .tofu import run_plan_json

        code, plan = run_plan_json(stack_dir, init_extra=init_extra)
        if plan is not None:
            print(json.dumps({"stack": stack_dir.name, "exit_code": code, **readable(plan)}, indent=2))
        return code
    return run_action(stack_dir, arguments.tofu_action, auto_approve=getattr(arguments, "auto_approve", False), init_extra=init_extra)


def _cost(arguments: argparse.Namespace, spec_options: dict) -> int:
    from rich.console import Console

    from .cost import Assumptions, CostError, PriceTable, estimate, load_stacks, render

    try:
        budget = arguments.budget if arguments.budget is not None else _budget_of(arguments.stacks, spec_options)
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
        document = report.as_dict()
        from .footprint import FootprintError, estimate_footprint

        try:  # the same stacks' footprint beside their cost; the cost stands without it
            document["footprint"] = estimate_footprint(load_stacks(arguments.outdir, arguments.stacks)).as_dict()
        except FootprintError as error:
            document["footprint"] = {"error": str(error)}
        print(json.dumps(document, indent=2))
    else:
        render(report, Console(width=140))
    if arguments.fail_over_budget and (report.over_budget or report.unpriced):
        return 1
    return 0


def _budget_of(stacks: Sequence[str], spec_options: dict) -> float:
    """The budget the stacks are priced against: their application's, when they all belong to one that
    has one (Spotilike's for spotilike); GreenLeaf's prod budget otherwise, as for the default stacks."""
    owners = set()
    applications = load_applications(config_file=spec_options.get("config_file"))
    for stack in stacks:
        owner = next((application for application in applications if stack in application.stack_names()), None)
        owners.add(owner.name if owner is not None and owner.budget() is not None else None)
    if len(owners) == 1 and None not in owners:
        return next(application for application in applications if application.name in owners).budget()  # type: ignore[return-value]
    return load_spec("prod", **spec_options).monthly_budget_usd


def _check(arguments: argparse.Namespace) -> int:
    """The reachability table of the synthesized stacks; exit 1 when a declared flow is blocked."""
    from .reachability import check_folder, render

    available = sorted(path.parent.name for path in arguments.outdir.glob("stacks/*/cdk.tf.json"))
    if not available:
        raise ConfigError(f"--outdir: {str(arguments.outdir)!r} holds no synthesized stack; allowed: a folder written by 'spawnit synth'")
    unknown = [name for name in arguments.stacks if name not in available]
    if unknown:
        raise ConfigError(f"STACK: {unknown[0]!r} is not allowed; {did_you_mean(unknown[0], available)}allowed: {', '.join(available)}")
    reports = check_folder(arguments.outdir, arguments.stacks or None)
    print(render(reports))
    failures = [line for report in reports for line in report.failures]
    flows = sum(len(report.flows) for report in reports)
    print(f"{flows - len(failures)} of {flows} declared flows allowed end to end in {len(reports)} stacks" if flows else "no declared flow")
    return 1 if failures else 0


def _footprint(arguments: argparse.Namespace) -> int:
    from rich.console import Console

    from .cost import CostError, load_stacks
    from .footprint import estimate_footprint, render_footprint

    try:
        report = estimate_footprint(load_stacks(arguments.outdir, arguments.stacks), load_percent=arguments.load)
    except CostError as error:
        print(f"spawnit: {error}", file=sys.stderr)
        return EXIT_USAGE
    if arguments.format == "json":
        print(json.dumps(report.as_dict(), indent=2))
    else:
        render_footprint(report, Console(width=140))
    return 0


def _serve(host: str, port: int, worker_concurrency: int) -> int:
    if not 1 <= port <= 65535:
        print(f"spawnit: --port: {port} is not allowed; allowed: 1 to 65535", file=sys.stderr)
        return EXIT_USAGE
    if not 0 <= worker_concurrency <= MAX_WORKER_CONCURRENCY:
        print(f"spawnit: --worker-concurrency: {worker_concurrency} is not allowed; allowed: 0 to {MAX_WORKER_CONCURRENCY}", file=sys.stderr)
        return EXIT_USAGE
    import uvicorn

    from .api import SETTINGS_ERRORS, create_app

    try:
        app = create_app(worker_concurrency=worker_concurrency)
    except SETTINGS_ERRORS as error:
        print(f"spawnit: {error}", file=sys.stderr)
        return EXIT_USAGE
    # Who called is the audit trail's business (SPAWNIT_TRUSTED_PROXIES): uvicorn does not rewrite the peer address.
    uvicorn.run(app, host=host, port=port, log_level="info", proxy_headers=False)
    return 0


def _worker(concurrency: int, metrics_port: int | None) -> int:
    if not 1 <= concurrency <= MAX_WORKER_CONCURRENCY:
        print(f"spawnit: --concurrency: {concurrency} is not allowed; allowed: 1 to {MAX_WORKER_CONCURRENCY}", file=sys.stderr)
        return EXIT_USAGE
    if metrics_port is not None and not 1 <= metrics_port <= 65535:
        print(f"spawnit: --metrics-port: {metrics_port} is not allowed; allowed: 1 to 65535", file=sys.stderr)
        return EXIT_USAGE
    from .api import SETTINGS_ERRORS
    from .api.worker import run_worker

    try:
        return run_worker(concurrency, metrics_port)
    except SETTINGS_ERRORS as error:
        print(f"spawnit: {error}", file=sys.stderr)
        return EXIT_USAGE


def _audit(arguments: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from .api import SETTINGS_ERRORS
    from .api.audit import AuditQuery, AuditQueryError, AuditTrail, as_csv, parse_time
    from .api.store import store_from_environment

    try:
        query = AuditQuery(
            arguments.client, arguments.instance, arguments.subject, arguments.action, arguments.outcome,
            parse_time("--since", arguments.since), parse_time("--until", arguments.until), limit=arguments.limit,
        )
        trail = AuditTrail(store_from_environment().objects)
    except (AuditQueryError, *SETTINGS_ERRORS) as error:
        print(f"spawnit: {str(error).replace('limit:', '--limit:', 1)}", file=sys.stderr)
        return EXIT_USAGE
    records = trail.page(query)["records"]
    if arguments.format == "jsonl":
        for record in records:
            print(json.dumps(record, sort_keys=True))
    elif arguments.format == "csv":
        sys.stdout.write(as_csv(records))
    else:
        table = Table("at", "outcome", "action", "subject", "client/instance", "job", "address", box=None)
        for record in records:
            where = "/".join(filter(None, (record.get("client"), record.get("instance"))))
            table.add_row(record["at"], record["outcome"], record["action"], record.get("subject") or "-", where or "-", (record.get("job") or "-")[:8], record.get("address") or "-")
        Console(width=200).print(table) if records else print("no audit record matches")
    return 0


def _bootstrap(endpoint_url: str | None, specs: dict[str, EnvironmentSpec], spotilike) -> int:  # noqa: ANN001 - a SpotilikeSpec
    from .bootstrap import BootstrapError, StateTarget, bootstrap_state

    targets = {
        StateTarget(bucket=spec.resolved_state_bucket, lock_table=spec.resolved_state_lock_table, region=spec.region)
        for spec in specs.values()
        if spec.state_backend == "s3"
    }
    if spotilike.state_backend == "s3":  # Spotilike's stacks lock with S3's own lock files: a bucket only
        targets.add(StateTarget(bucket=spotilike.resolved_state_bucket, lock_table=None, region=spotilike.region))
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
