"""Argument parsing shared by every task file: CONFIG [--set key=value ...] [--threads N] [--force]."""

from __future__ import annotations

import argparse
import sys

from . import config, provenance
from .errors import UserError
from .log import error_console
from .stages import STAGES

# Flags only some tasks take: task -> (flag, help).
TASK_FLAGS = {
    "publish": ("--allow-overrides", "publish a run made with --set overrides (the report lists them)"),
}


def _positive(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1 (got {text!r})")
    return value


def parse_args(task: str, argv: list[str] | None, default_config: str | None):
    stage = STAGES[task]
    parser = argparse.ArgumentParser(
        prog=f"tasks/{task}.py", description=(stage.__doc__ or task).strip().splitlines()[0],
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
    if task in TASK_FLAGS:
        flag, text = TASK_FLAGS[task]
        parser.add_argument(flag, action="store_true", help=text)
    return parser.parse_args(argv)


def run(task: str, argv: list[str] | None = None, default_config: str | None = None) -> int:
    """Run one stage; bad input -> one line on stderr and exit status 2."""
    args = parse_args(task, argv, default_config)
    options = {"allow_overrides": args.allow_overrides} if task == "publish" else {}
    try:
        experiment = config.load(args.config, args.overrides)
        if args.threads is not None:
            experiment.threads = args.threads
        with provenance.invoked(task, args.config, args.overrides, args.threads) as invocation:
            try:
                STAGES[task](experiment, force=args.force, **options)
            except KeyboardInterrupt:
                error_console.print(f"interrupted; artifacts written so far are complete: `{invocation.command()}` "
                                    "resumes", markup=False, highlight=False)
                return 130
    except UserError as error:
        error_console.print(f"error: {error}", markup=False, highlight=False)
        return 2
    except KeyboardInterrupt:
        error_console.print("interrupted", markup=False)
        return 130
    return 0


def main(task: str, default_config: str | None = None) -> None:
    sys.exit(run(task, sys.argv[1:], default_config))
