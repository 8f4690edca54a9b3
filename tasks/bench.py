"""bench: speed benchmarks -> runs/benchmarks.md (results/benchmarks.md with --publish).

Usage: python tasks/bench.py [--threads N] [--no-reproduce] [--publish]"""

import argparse
import sys

import torch

from prunelab import paths
from prunelab.bench import run_benchmarks
from prunelab.errors import UserError
from prunelab.log import error_console

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="tasks/bench.py", description="Speed benchmarks; every ratio compares "
                                     "runs made in the same invocation.")
    parser.add_argument("--threads", type=int, default=1, metavar="N", help="torch CPU threads (default 1)")
    parser.add_argument("--no-reproduce", action="store_true", help="skip the reproduce wall-time run (minutes)")
    parser.add_argument("--publish", action="store_true",
                        help="write the checked-in results/benchmarks.md instead of runs/benchmarks.md")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error("--threads: expected a whole number >= 1")
    torch.set_num_threads(args.threads)
    try:
        run_benchmarks(paths.benchmarks(args.publish), with_reproduce=not args.no_reproduce)
    except UserError as error:
        error_console.print(f"error: {error}", markup=False)
        sys.exit(2)
