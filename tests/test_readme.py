"""The README's layout section matches the tree: every path it names exists, every tracked top-level entry,
every module of spawnit/ and spawnit/api/, every package of spawnit/ and every script is named, and every
module a description mentions exists."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESCRIPTION_COLUMN = 20  # a line indented this far continues the description above it


def layout_block(readme: str) -> str:
    section = readme[readme.index("## Layout\n"):]
    return section.split("```\n", 2)[1]


def named_paths(block: str) -> list[str]:
    """The paths the block names: `name  description` lines, nested by two spaces under a `folder/` line;
    `a, b` names several; a name may be a glob (requirements*.txt)."""
    paths, parents = [], []
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip(" "))
        if not line.strip() or indent >= DESCRIPTION_COLUMN:
            continue
        names = re.split(r"\s{2,}", line.strip(), maxsplit=1)[0]
        depth = indent // 2
        parents = parents[:depth]
        prefix = "".join(parents)
        for name in names.split(", "):
            paths.append(prefix + name)
        if names.endswith("/") and "," not in names:
            parents.append(names)
    return paths


def tracked() -> list[str]:
    return subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()


def layout_problems(block: str, files: list[str]) -> list[str]:
    paths = named_paths(block)
    problems = []
    existing = set(files) | {str(Path(file).parent) + "/" for file in files} | {"/".join(file.split("/")[:depth]) + "/" for file in files for depth in range(1, file.count("/") + 1)}
    for path in paths:
        if not any(fnmatch.fnmatch(candidate, path) for candidate in existing):
            problems.append(f"named but absent: {path}")
    covered = lambda candidate: any(fnmatch.fnmatch(candidate, path) or path.startswith(candidate) for path in paths)  # noqa: E731
    tops = {file.split("/")[0] + ("/" if "/" in file else "") for file in files}
    wanted = tops | {file for file in files if re.fullmatch(r"spawnit/(api/)?[^/]+\.py|scripts/[^/]+", file)}
    wanted |= {"/".join(file.split("/")[:2]) + "/" for file in files if re.match(r"spawnit/[^/]+/", file)}
    problems += [f"not named: {candidate}" for candidate in sorted(wanted) if not covered(candidate)]
    basenames = {Path(file).name for file in files}
    problems += [f"mentioned but absent: {module}" for module in sorted(set(re.findall(r"\b[\w]+\.py\b", block))) if module not in basenames]
    return problems


def test_the_readme_layout_matches_the_tree():
    assert layout_problems(layout_block((ROOT / "README.md").read_text()), tracked()) == []


def test_the_layout_check_finds_an_absent_module_an_unnamed_folder_and_a_missing_file():
    files = ["main.py", ".ci/run", "spawnit/cli.py", "spawnit/api/app.py", "spawnit/api/store.py"]
    block = (
        "main.py                  entry point\n"
        "spawnit/\n"
        "  cli.py                 the command\n"
        "  api/                   the orchestrator\n"
        "    app.py               the routes\n"
        "    routes.py            the routes, said twice\n"
        "                         continued; jobs.py too\n"
    )
    assert layout_problems(block, files) == [
        "named but absent: spawnit/api/routes.py",
        "not named: .ci/",
        "not named: spawnit/api/store.py",
        "mentioned but absent: jobs.py",
        "mentioned but absent: routes.py",
    ]


def test_every_file_the_readme_commands_name_exists_and_works():
    """Files a reader is told to pass (--params, --config, catalog check/add) are in the repository, the
    README's template example is examples/mosquitto.yaml byte for byte, and each example is accepted."""
    import json

    from spawnit.services import get_service
    from spawnit.services.template import load_template
    from spawnit.stacks.environment_settings import load_spec
    from spawnit.stacks.platform_settings import load_platform_settings
    from spawnit.stacks.spotilike_settings import load_spotilike_spec

    readme = (ROOT / "README.md").read_text()
    named = re.findall(r"(?:--params|--config|catalog check|catalog add)\s+([\w./-]+\.(?:json|toml|yaml|yml))", readme)
    assert named and [path for path in named if not (ROOT / path).is_file()] == []
    example = readme.split("<!-- template-example -->\n```yaml\n", 1)[1].split("```", 1)[0]
    assert (ROOT / "examples" / "mosquitto.yaml").read_text() == example
    assert load_template(example.encode(), "examples/mosquitto.yaml").name == "mosquitto"
    config = ROOT / "examples" / "spawnit.toml"
    for environment in ("dev", "preprod", "prod"):
        load_spec(environment, config_file=config, environ={})
    assert load_spotilike_spec(config_file=config, environ={}).api_cpu == 512
    assert load_platform_settings(config_file=config, environ={}).users[0].username == "alice"
    wordpress = get_service("wordpress")
    assert wordpress.checked({**json.loads((ROOT / "examples" / "wordpress.json").read_text()), "target": "aws"}).site_url == "https://blog.acme.example"
