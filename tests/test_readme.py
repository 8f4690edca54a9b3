"""The README a newcomer follows: short, its links resolve, the configs and tasks it names exist, and
its quick commands run.

Commands in the README's code blocks fall in two groups:
- run here: the `--help` forms (`prunelab --help`, `prunelab TASK --help`, `python tasks/X.py --help`).
  They only parse arguments and print, so they take seconds and touch nothing.
- checked for existence only: everything else (`pixi r ...`, `python tasks/X.py CONFIG`, `prunelab`
  alone, `apt-get`, `pip`, `pytest`). Those train models for minutes to hours, install system or
  Python packages, need pixi (absent where this suite runs) or run this very suite; the test checks
  that the task, task file and configs they name exist.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from prunelab import config

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
LINKED = [README, REPO / "results" / "README.md"]  # the pages whose relative links must resolve
MAX_LINES = 250

PIXI_TASKS = set(tomllib.loads((REPO / "pixi.toml").read_text())["tasks"])
TASK_FILES = {path.stem for path in (REPO / "tasks").glob("*.py")}


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _code_blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)


def _commands(text: str) -> list[str]:
    """The shell commands of the untyped code blocks: one per line, comments dropped, `&&` split."""
    commands = []
    for language, body in _code_blocks(text):
        if language:  # toml and other typed blocks are not commands
            continue
        for line in body.splitlines():
            line = re.split(r"\s+#", line, maxsplit=1)[0].strip()
            commands += [part.strip() for part in line.split("&&") if part.strip()]
    return commands


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", _text(path), flags=re.S | re.M)
    return {_slug(match) for match in re.findall(r"^#{1,6}\s+(.*)$", text, flags=re.M)}


def _links(path: Path) -> list[str]:
    text = re.sub(r"^```.*?^```", "", _text(path), flags=re.S | re.M)  # no links inside code blocks
    return [target for target in re.findall(r"\]\(([^)\s]+)\)", text)
            if not re.match(r"[a-z]+:", target)]  # http(s):, mailto: are not files


def test_readme_is_short():
    lines = len(_text(README).splitlines())
    assert lines < MAX_LINES, f"README.md has {lines} lines; move detail to docs/ or results/README.md"


@pytest.mark.parametrize("page", LINKED, ids=lambda path: str(path.relative_to(REPO)))
def test_relative_links_resolve(page):
    broken = []
    for target in _links(page):
        file, _, anchor = target.partition("#")
        resolved = page if not file else (page.parent / file).resolve()
        if not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no heading #{anchor})")
    assert not broken, f"{page.name}: broken links: {broken}"


def test_named_configs_exist():
    names = set(re.findall(r"configs/[\w.-]+\.toml", _text(README)))
    assert names, "the README names no config"
    missing = sorted(name for name in names if not (REPO / name).is_file())
    assert not missing, f"README.md names configs that do not exist: {missing}"


def _code(text: str) -> str:
    """The README's code: fenced blocks and inline `spans` (prose may say "prunelab deliberately ...")."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return "\n".join([body for _, body in _code_blocks(text)] + re.findall(r"`([^`\n]+)`", prose))


def test_named_tasks_exist():
    """Every `pixi r task`, `prunelab task` and `python tasks/x.py` in the README's code, inline spans
    included; upper-case words (`pixi r TASK`) are placeholders."""
    text = _code(_text(README))
    problems = []
    for task in re.findall(r"pixi r(?:un)? ([a-z][\w-]*)", text):
        if task not in PIXI_TASKS:
            problems.append(f"pixi r {task}: no such task in pixi.toml")
    for task in re.findall(r"\bprunelab ([a-z][\w-]*)", text):
        if task.replace("_", "-") not in PIXI_TASKS:  # the console command has the pixi tasks' names
            problems.append(f"prunelab {task}: no such task")
    for stem in re.findall(r"python tasks/([a-z_]+)\.py", text):
        if stem not in TASK_FILES:
            problems.append(f"python tasks/{stem}.py: no such file")
    assert not problems, problems
    assert re.search(r"pixi r (?:un )?tests\b", text) and "python -m pytest" in text  # the README's test commands


def test_readme_names_its_test_command_in_ci():
    """.ci/run installs from nothing and ends with the README's pip test command."""
    lines = [line.strip() for line in _text(REPO / ".ci" / "run").splitlines()
             if line.strip() and not line.strip().startswith("#")]
    assert lines[-1] == "python -m pytest"
    assert "python -m pytest" in _commands(_text(README))


def test_config_reference_is_a_valid_config():
    """docs/config.md's annotated block (the full reference the README links) loads as a config."""
    text = _text(REPO / "docs" / "config.md")
    block = next(body for language, body in _code_blocks(text) if language == "toml")
    exp = config.parse(tomllib.loads(block), "docs/config.md")
    assert exp.sweep is not None and getattr(exp, "compress", None) is not None


def _help_argv(command: str) -> list[str] | None:
    """The argv of a README command that is run here (a --help form), else None."""
    words = shlex.split(command)
    if words[-1:] != ["--help"]:
        return None
    if words[0] == "prunelab":
        script = shutil.which("prunelab", path=str(Path(sys.executable).parent))
        # Without the console script (a source checkout never pip-installed), its entry point.
        head = [script] if script else [sys.executable, "-c", "import sys; from prunelab.cli import console; "
                                                              "sys.exit(console())"]
        return head + words[1:]
    if words[0] == "python" and len(words) > 1 and words[1].startswith("tasks/"):
        return [sys.executable] + words[1:]
    return None  # e.g. `pixi r X --help`: pixi is not installed here; the task's existence is checked above


HELP_COMMANDS = [command for command in _commands(_text(README)) if _help_argv(command)]


def test_readme_has_runnable_commands():
    assert HELP_COMMANDS, "no --help command in the README's code blocks"


@pytest.mark.parametrize("command", HELP_COMMANDS)
def test_help_commands_run(command):
    result = subprocess.run(_help_argv(command), cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, f"{command}: exit {result.returncode}\n{result.stderr[-2000:]}"
    assert "usage:" in result.stdout.lower()
