"""bench: speed benchmarks -> results/benchmarks.md. Usage: python tasks/bench.py [--no-reproduce]"""

import argparse
import sys

from prunelab.bench import run_benchmarks
from prunelab.errors import UserError
from prunelab.log import error_console

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="tasks/bench.py")
    parser.add_argument("--no-reproduce", action="store_true", help="skip the reproduce wall-time run (minutes)")
    args = parser.parse_args()
    try:
        run_benchmarks(with_reproduce=not args.no_reproduce)
    except UserError as error:
        error_console.print(f"error: {error}", markup=False)
        sys.exit(2)
