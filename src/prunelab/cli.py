"""Argument parsing shared by every task file: CONFIG [--set key=value ...] [--threads N] [--force];
and the `prunelab` command (pyproject's [project.scripts]): `prunelab TASK CONFIG ...`, the same
tasks for pip users."""

from __future__ import annotations

import argparse
import re
import sys
import textwrap
from typing import Any

from . import config, provenance
from .errors import DriftFound, UserError
from .log import error_console
from .stages import STAGES
from .sweep import Shard

# The config a task runs when none is given (tasks/reproduce.py passes the same one).
DEFAULT_CONFIGS = {"reproduce": "configs/lenet5.toml"}


def _shard(text: str) -> Shard:
    try:
        return Shard.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _positive(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 (got {text!r})")
    return value


# Flags only some tasks take: task -> [(flag, argparse keywords)]. The stage gets the value as
# the keyword argument of the flag's name (--allow-overrides -> allow_overrides).
TASK_FLAGS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "publish": [("--allow-overrides", {"action": "store_true",
                                       "help": "publish a run made with --set overrides (the report lists them)"})],
    "sweep": [
        ("--shard", {"type": _shard, "metavar": "K/N",
                     "help": "run only the K-th of N disjoint slices of the grid (1 <= K <= N; cell i goes to "
                             "shard i mod N + 1); the shard that finishes last writes sweep.json "
                             "(docs/scale-out.md)"}),
        ("--jobs", {"type": _positive, "default": 1, "metavar": "N",
                    "help": "run the unfinished cells N at a time, each in its own process (default 1: one after "
                            "another); every job keeps the config's threads (--threads), and on a GPU all jobs "
                            "share it; results are the serial run's (docs/scale-out.md)"}),
    ],
}


def _task_options(task: str, args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The task flags' values as the stage's keyword arguments, and the flags given as typed (for
    the resume hint; a flag left at its default is not repeated)."""
    options, words = {}, []
    for flag, keywords in TASK_FLAGS.get(task, []):
        name = flag.lstrip("-").replace("-", "_")
        value = options[name] = getattr(args, name)
        if value in (None, False) or ("default" in keywords and value == keywords["default"]):
            continue
        words += [flag] if value is True else [flag, str(value)]
    return options, words


def parse_args(task: str, argv: list[str] | None, default_config: str | None, prog: str | None = None):
    stage = STAGES[task]
    parser = argparse.ArgumentParser(
        prog=prog or f"tasks/{task}.py", description=(stage.__doc__ or task).strip().splitlines()[0],
        epilog="Run from the repository root: relative paths in configs (data.root, results_root, "
               "train.pretrained) are read from the current directory.",
    )
    if default_config is None:
        parser.add_argument("config", help="experiment TOML, e.g. configs/lenet5.toml")
    else:
        parser.add_argument("config", nargs="?", default=default_config, help=f"experiment TOML (default {default_config})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=2 (repeatable; recorded in the artifacts)")
    parser.add_argument("--threads", type=_positive, default=None, metavar="N",
                        help="torch CPU threads (default: the config's `threads`, 1); results are bit-identical "
                             "only at the same thread count")
    parser.add_argument("--force", action="store_true", help="redo the stage even if its artifact is up to date")
    for flag, keywords in TASK_FLAGS.get(task, []):
        parser.add_argument(flag, **keywords)
    return parser.parse_args(argv)


def run(task: str, argv: list[str] | None = None, default_config: str | None = None,
        runner: str | None = None) -> int:
    """Run one stage; bad input -> one line on stderr and exit status 2. `runner`: the command form
    hints take (provenance.CONSOLE for `prunelab TASK`; None: pixi or python, detected)."""
    prog = f"{runner} {task.replace('_', '-')}" if runner else None
    args = parse_args(task, argv, default_config, prog)
    options, flag_words = _task_options(task, args)
    try:
        experiment = config.load(args.config, args.overrides)
        if args.threads is not None:
            experiment.threads = args.threads
        with provenance.invoked(task, args.config, args.overrides, args.threads, runner) as invocation:
            try:
                STAGES[task](experiment, force=args.force, **options)
            except KeyboardInterrupt:
                resume = invocation.command(None, *flag_words)  # e.g. a shard's --shard K/N, --jobs N
                error_console.print(f"interrupted; artifacts written so far are complete: `{resume}` resumes",
                                    markup=False, highlight=False)
                return 130
    except UserError as error:
        error_console.print(f"error: {error}", markup=False, highlight=False)
        return 2
    except DriftFound as drift:  # `check`: one line per figure that moved
        for line in drift.lines:
            error_console.print(f"drift: {line}", markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        error_console.print("interrupted", markup=False)
        return 130
    return 0


def main(task: str, default_config: str | None = None) -> None:
    sys.exit(run(task, sys.argv[1:], default_config or DEFAULT_CONFIGS.get(task)))


def _summary(task: str) -> str:
    """A task's one-line description: its stage's docstring up to the first ". " or the first "; "
    outside parentheses."""
    paragraph = " ".join((STAGES[task].__doc__ or task).strip().split("\n\n")[0].split())
    return re.split(r"\. |; (?![^(]*\))", paragraph)[0].rstrip(".")


def _task_name(text: str) -> str:
    task = text.replace("-", "_")  # `prunelab get-dataset` as in pixi, or get_dataset as the task file
    if task not in STAGES:
        names = ", ".join(name.replace("_", "-") for name in STAGES)
        raise argparse.ArgumentTypeError(f"unknown task {text!r}; the tasks are {names}")
    return task


def console(argv: list[str] | None = None) -> int:
    """The `prunelab` command: `prunelab TASK CONFIG [--set KEY=VALUE ...] [--threads N] [--force]`;
    returns the exit status (the console script exits with it)."""
    tasks = "\n".join(textwrap.fill(_summary(task), width=100, initial_indent=f"  {task.replace('_', '-'):<13}",
                                     subsequent_indent=" " * 15) for task in STAGES)
    parser = argparse.ArgumentParser(
        prog=provenance.CONSOLE, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage=f"{provenance.CONSOLE} TASK CONFIG [--set KEY=VALUE ...] [--threads N] [--force] [task flags]",
        description="Run one task of the pruning pipeline on an experiment config (the same tasks as "
                    "`pixi r TASK` and tasks/TASK.py).",
        epilog=f"tasks:\n{tasks}\n\n`{provenance.CONSOLE} TASK --help` describes a task's flags. Run from the "
               "directory the config's\nrelative paths (data.root, results_root, train.pretrained) are meant from.",
    )
    parser.add_argument("task", type=_task_name, metavar="TASK", help="one of the tasks below (- or _ alike)")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="CONFIG and the task's flags")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return run(args.task, args.args, DEFAULT_CONFIGS.get(args.task), runner=provenance.CONSOLE)
