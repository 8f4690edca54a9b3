"""Argument parsing shared by every task file: CONFIG [--set key=value ...] [--force]."""

from __future__ import annotations

import argparse
import sys

from . import config
from .errors import UserError
from .log import error_console
from .stages import STAGES


def parse_args(task: str, argv: list[str] | None, default_config: str | None):
    parser = argparse.ArgumentParser(prog=f"tasks/{task}.py", description=f"prunelab {task.replace('_', '-')}")
    if default_config is None:
        parser.add_argument("config", help="experiment TOML, e.g. configs/lenet5.toml")
    else:
        parser.add_argument("config", nargs="?", default=default_config, help=f"experiment TOML (default {default_config})")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=2 (repeatable)")
    parser.add_argument("--force", action="store_true", help="redo the stage even if its artifact is up to date")
    return parser.parse_args(argv)


def run(task: str, argv: list[str] | None = None, default_config: str | None = None) -> int:
    """Run one stage; bad input -> one line on stderr and exit status 2."""
    args = parse_args(task, argv, default_config)
    try:
        experiment = config.load(args.config, args.overrides)
        STAGES[task](experiment, force=args.force)
    except UserError as error:
        error_console.print(f"error: {error}", markup=False, highlight=False)
        return 2
    except KeyboardInterrupt:
        error_console.print("interrupted; artifacts written so far are complete, re-run to resume", markup=False)
        return 130
    return 0


def main(task: str, default_config: str | None = None) -> None:
    sys.exit(run(task, sys.argv[1:], default_config))
