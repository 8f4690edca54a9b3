"""How an artifact was made, and the exact command to run next.

A task records its invocation (task, config, `--set` overrides, `--threads`, and whether
it ran through `pixi run`, plain python or the `prunelab` command). Every artifact a stage
writes carries a `made_by` record built from it: the command, the overrides, the torch
thread count, torch and Python versions, the device and the CPU (CPU results are
bit-identical only on the same kind of CPU). Hints in error messages repeat the user's own
command form and overrides, so following one literally works; run from a directory other than
the one a repository's config assumes, a missing input says so (`elsewhere`).
"""

from __future__ import annotations

import os
import platform
import shlex
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import torch

from .config import Experiment
from .config.load import set_item
from .report.markdown import plural

CONSOLE = "prunelab"  # the console script's name (pyproject's [project.scripts]) and its runner


@dataclass(frozen=True)
class Invocation:
    task: str = "reproduce"          # the task file's name, e.g. "get_dataset"
    config: str = ""                 # the config path as the user gave it
    overrides: tuple[str, ...] = ()  # `--set KEY=VALUE` items, in order
    threads: int | None = None       # `--threads N` as given (None: the config's `threads`)
    runner: str = "python"           # "pixi" under `pixi run` / `pixi shell`, CONSOLE, else "python"
    environment: str = "default"     # the pixi environment

    def command(self, task: str | None = None, *extra: str, config: str | None = None,
                keep_overrides: bool = True) -> str:
        """The command that runs `task` (default: this one) the way the user ran this one."""
        task = task or self.task
        if self.runner == "pixi":
            where = "" if self.environment == "default" else f"-e {shlex.quote(self.environment)} "
            words = [f"pixi r {where}{task.replace('_', '-')}"]
        elif self.runner == CONSOLE:
            words = [f"{CONSOLE} {task.replace('_', '-')}"]
        else:
            words = [f"python tasks/{task}.py"]
        words.append(shlex.quote(config if config is not None else self.config))
        if keep_overrides:
            words += set_words(self.overrides)
            if self.threads is not None:
                words.append(f"--threads {self.threads}")
        return " ".join(words + list(extra))


def set_words(overrides: list[str] | tuple[str, ...]) -> list[str]:
    """`--set KEY=VALUE` items as the user types them: ["--set train.epochs=1", "--set 'seeds=[0]'"]."""
    return [set_item(item) for item in overrides]


def _runner() -> tuple[str, str]:
    """pixi sets PIXI_ENVIRONMENT_NAME in `pixi run` and `pixi shell`."""
    environment = os.environ.get("PIXI_ENVIRONMENT_NAME")
    return ("pixi", environment) if environment else ("python", "default")


_current: Invocation | None = None


@contextmanager
def invoked(task: str, config: str, overrides: list[str] | tuple[str, ...], threads: int | None,
            runner: str | None = None) -> Iterator[Invocation]:
    """Record the running task's invocation for made_by records and hints (cli.run). `runner`: the
    form the user typed when the caller knows it (CONSOLE); None: pixi or python, detected."""
    global _current
    detected, environment = _runner()
    previous, _current = _current, Invocation(task, config, tuple(overrides), threads, runner or detected, environment)
    try:
        yield _current
    finally:
        _current = previous


def _without_cli(config: str = "") -> Invocation:
    """An invocation for library use (no task command line): no overrides, the detected runner."""
    runner, environment = _runner()
    return Invocation(config=config, runner=runner, environment=environment)


def current() -> Invocation | None:
    """The running task's invocation; None in library use (no task command line, no overrides)."""
    return _current


def invocation(exp: Experiment) -> Invocation:
    """The running task's invocation, or (library use, tests) a plain one for the config."""
    return _current if _current is not None else _without_cli(exp.path)


def command(exp: Experiment, task: str, *extra: str) -> str:
    """`task` on this experiment's config, with the user's overrides, in the user's form."""
    current = invocation(exp)
    return current.command(task, *extra, config=exp.path if current.config != exp.path else None)


def run_hint(exp: Experiment, task: str, *extra: str) -> str:
    return f"run `{command(exp, task, *extra)}`"


# Files that mark a repository's root: a config in <root>/configs/ assumes it is run from <root>.
ROOT_MARKERS = ("pyproject.toml", "pixi.toml")


def elsewhere(exp: Experiment, missing: Path | None = None) -> str | None:
    """Why a relative input path may be missing: "you are in /tmp; the config's relative paths are read
    from the current directory: cd /repo first", when the config lives in <root>/configs/ (<root> holding
    pyproject.toml or pixi.toml), the current directory is not <root>, and the `missing` path (without
    one: data.root, results_root or train.pretrained) is relative; else None. Running from elsewhere
    is allowed: only a "not found" error carries this."""
    candidates = [missing] if missing is not None else [exp.data.root, exp.results_root, exp.train.pretrained]
    relative = [path for path in candidates if path is not None and not Path(path).is_absolute()]
    folder = next((parent for parent in Path(exp.path).resolve().parents if parent.name == "configs"), None)
    if not relative or folder is None or not any((folder.parent / name).is_file() for name in ROOT_MARKERS):
        return None
    here, root = Path.cwd().resolve(), folder.parent
    if here == root:
        return None
    return (f"you are in {here}; the config's relative paths are read from the current directory: "
            f"cd {shlex.quote(str(root))} first")


def config_for(artifact: Path) -> Path | None:
    """The checked-in config that makes an artifact under <root>/<name>/, if there is one."""
    candidate = Path("configs") / f"{Path(artifact).parent.name}.toml"
    return candidate if candidate.is_file() else None


def other_config_hint(artifact: Path, task: str) -> str:
    """How to make an artifact of another experiment (e.g. the dense model a config starts from)."""
    config = config_for(artifact)
    if config is None:
        return f"make it first (`{task}` of the experiment that writes it)"
    current = _current or _without_cli()
    return f"run `{current.command(task, config=str(config), keep_overrides=False)}` first"


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what platform knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment(device: torch.device | str) -> dict:
    """What CPU results depend on besides the config: thread count, torch, CPU kind."""
    return {
        "device": str(device),
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),  # a TorchVersion object would not load weights_only
        "python": platform.python_version(),
        "cpu": cpu_name(),
        # The SIMD level torch's CPU kernels use (e.g. AVX512, AVX2): it changes rounding.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def made_by(exp: Experiment, device: torch.device | str) -> dict:
    """The record every artifact carries: command, overrides and environment."""
    current = invocation(exp)  # for a sweep cell: the sweep's command
    return {
        "command": current.command(),
        "overrides": list(current.overrides),
        **environment(device),
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def describe_environment(record: dict) -> str:
    """e.g. "1 torch thread, torch 2.13.0+cpu, cpu, Intel(R) Xeon(R) (AVX512)"."""
    threads = record.get("threads")
    thread_text = plural(threads, "torch thread") if threads is not None else "threads unknown"
    return (f"{thread_text}, torch {record.get('torch', '?')}, {record.get('device', '?')}, "
            f"{record.get('cpu', '?')} ({record.get('cpu_capability', '?')})")
