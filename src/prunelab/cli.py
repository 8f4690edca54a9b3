"""Argument parsing shared by every task file: CONFIG [--set key=value ...] [--threads N] [--force];
the benchmarks' options (tasks/bench.py); and the `prunelab` command (pyproject's [project.scripts]):
`prunelab TASK CONFIG ...`, `prunelab bench`, `prunelab tests`: the tasks of pixi for pip users."""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from . import config, paths, provenance
from .bench import only_sections, run_benchmarks, run_only
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
    "reproduce": [
        ("--jobs", {"type": _positive, "default": None, "metavar": "N",
                    "help": "with `seeds`, run N seeds at a time, each in its own process (default: as many as "
                            "the usable CPUs hold at the config's threads; 1: one after another); every seed keeps "
                            "the config's threads, so its numbers are the serial run's"}),
    ],
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


def _located(message: str, experiment: config.Experiment | None) -> str:
    """A missing input's error, plus where its relative paths were looked for when the task runs outside
    the repository its config belongs to (provenance.elsewhere). Every missing-input error says "not
    found" (checkpoints.read_input, the data set, train.pretrained, atomic reads, sweep.json)."""
    note = provenance.elsewhere(experiment) if experiment is not None and " not found" in message else None
    return f"{message}; {note}" if note and note not in message else message


def run(task: str, argv: list[str] | None = None, default_config: str | None = None,
        runner: str | None = None) -> int:
    """Run one stage; bad input -> one line on stderr and exit status 2. `runner`: the command form
    hints take (provenance.CONSOLE for `prunelab TASK`; None: pixi or python, detected)."""
    prog = f"{runner} {task.replace('_', '-')}" if runner else None
    args = parse_args(task, argv, default_config, prog)
    options, flag_words = _task_options(task, args)
    loaded: list[config.Experiment] = []  # the experiment, once its config loaded (for _located)

    def work() -> int | None:
        experiment = config.load(args.config, args.overrides)
        loaded.append(experiment)
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
        return None

    return _status(work, lambda: loaded[0] if loaded else None)


def main(task: str, default_config: str | None = None) -> None:
    sys.exit(run(task, sys.argv[1:], default_config or DEFAULT_CONFIGS.get(task)))


def bench(argv: list[str] | None = None, prog: str = "tasks/bench.py") -> int:
    """The speed benchmarks -> runs/benchmarks.md (results/benchmarks.md with --publish); the exit status."""
    parser = argparse.ArgumentParser(prog=prog, description="Speed benchmarks; every ratio compares runs made in "
                                     "the same invocation.")
    parser.add_argument("--threads", type=_positive, default=1, metavar="N", help="torch CPU threads (default 1)")
    parser.add_argument("--no-reproduce", action="store_true", help="skip the reproduce wall-time run (minutes)")
    parser.add_argument("--publish", action="store_true",
                        help="write the checked-in results/benchmarks.md instead of runs/benchmarks.md")
    parser.add_argument("--only", choices=sorted(only_sections()), help="measure this section alone and put it in place of its "
                        "earlier figures (seeds: reproduce's seeds serial vs parallel; a family's name: its sections)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    output = paths.benchmarks(args.publish)
    return _status(lambda: run_only(output, args.only) if args.only else
                   run_benchmarks(output, with_reproduce=not args.no_reproduce))


def _status(work: Callable[[], object], experiment: Callable[[], config.Experiment | None] = lambda: None) -> int:
    """Run `work`; the exit status: the int it returns, else 0; bad input as one line (2), drift found by
    `check` one line per figure (1), Ctrl-C (130). `experiment`: the one a missing input belongs to."""
    try:
        status = work()
        return status if isinstance(status, int) else 0
    except UserError as error:
        error_console.print(f"error: {_located(str(error), experiment())}", markup=False, highlight=False)
        return 2
    except DriftFound as drift:  # `check`: one line per figure that moved
        for line in drift.lines:
            error_console.print(f"drift: {line}", markup=False, highlight=False)
        return 1
    except KeyboardInterrupt:
        error_console.print("interrupted", markup=False)
        return 130


def bench_main() -> None:
    """tasks/bench.py."""
    sys.exit(bench(sys.argv[1:]))


def tests(argv: list[str]) -> int:
    """The test suite: `python -m pytest ARGS` (the README's test command, pixi's `tests` task) in the
    repository root; pytest's exit status."""
    if not Path("tests").is_dir():  # pytest would collect nothing and say only "no tests ran"
        error_console.print(f"error: {Path.cwd()}: no tests/ folder here; run `{provenance.CONSOLE} tests` in the "
                            "repository's root (the clone's top folder)", markup=False, highlight=False)
        return 2
    return subprocess.call([sys.executable, "-m", "pytest", *argv])


# `prunelab` commands that are not stages (they take no CONFIG): name -> (one-line summary, runner).
COMMANDS: dict[str, tuple[str, Callable[[list[str]], int]]] = {
    "bench": ("Loader and training-speed benchmarks -> runs/benchmarks.md (--publish: results/benchmarks.md)",
              lambda argv: bench(argv, prog=f"{provenance.CONSOLE} bench")),
    "tests": ("The test suite: python -m pytest [pytest's arguments], in the repository root", tests),
}


def _summary(task: str) -> str:
    """A task's one-line description: its stage's docstring up to the first ". " or the first "; "
    outside parentheses."""
    paragraph = " ".join((STAGES[task].__doc__ or task).strip().split("\n\n")[0].split())
    return re.split(r"\. |; (?![^(]*\))", paragraph)[0].rstrip(".")


def task_lines() -> list[str]:
    """Every `prunelab` task, one line each, in pixi's spelling (get-dataset)."""
    summaries = {task.replace("_", "-"): _summary(task) for task in STAGES}
    summaries.update({name: summary for name, (summary, _) in COMMANDS.items()})
    return [f"  {name:<13}{summary}" for name, summary in summaries.items()]


USAGE = (f"usage: {provenance.CONSOLE} TASK CONFIG [--set KEY=VALUE ...] [--threads N] [--force] [task flags]\n"
         f"       {provenance.CONSOLE} bench [--threads N] [--no-reproduce] [--publish]\n"
         f"       {provenance.CONSOLE} tests [pytest's arguments]")


def _help() -> str:
    return "\n".join([
        USAGE, "", "Run one task of the pruning pipeline on an experiment config (the same tasks as `pixi r TASK` "
        "and tasks/TASK.py).", "", "tasks:", *task_lines(), "",
        f"`{provenance.CONSOLE} TASK --help` describes a task's flags. Run from the repository root: the config's "
        "relative paths (data.root, results_root, train.pretrained) are read from the current directory.",
    ])


def _unknown(name: str) -> str:
    """The error for a task name that is none: the closest task, or all of them."""
    names = [task.replace("_", "-") for task in STAGES] + list(COMMANDS)
    close = difflib.get_close_matches(name.replace("_", "-"), names, n=1)
    if close:
        return f"unknown task {name!r}; did you mean `{provenance.CONSOLE} {close[0]}`?"
    return f"unknown task {name!r}; the tasks are {', '.join(names)}"


def console(argv: list[str] | None = None) -> int:
    """The `prunelab` command: `prunelab TASK CONFIG [--set KEY=VALUE ...] [--threads N] [--force]`,
    `prunelab bench [options]`, `prunelab tests [pytest's arguments]`; alone or with --help it lists
    the tasks (exit 2 and 0). Returns the exit status (the console script exits with it)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        if argv:
            print(_help())
            return 0
        error_console.print(f"{_help()}\n{provenance.CONSOLE}: error: no TASK given", markup=False, highlight=False)
        return 2
    name, rest = argv[0], argv[1:]
    if name in COMMANDS:
        return COMMANDS[name][1](rest)
    task = name.replace("-", "_")  # `prunelab get-dataset` as in pixi, or get_dataset as the task file
    if task not in STAGES:
        error_console.print(f"{provenance.CONSOLE}: error: {_unknown(name)}", markup=False, highlight=False)
        return 2
    return run(task, rest, DEFAULT_CONFIGS.get(task), runner=provenance.CONSOLE)
