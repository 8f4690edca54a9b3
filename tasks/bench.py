"""bench: speed benchmarks -> runs/benchmarks.md (results/benchmarks.md with --publish).

Usage: python tasks/bench.py [--threads N] [--no-reproduce] [--publish]"""

from prunelab.cli import bench_main

if __name__ == "__main__":
    bench_main()
