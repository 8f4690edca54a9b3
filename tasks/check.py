"""check: compare a run's figures with the checked-in results/<name>/ (exit 1 on drift, 2 on bad input).
Usage: python tasks/check.py CONFIG [--set key=value ...]"""

from prunelab.cli import main

if __name__ == "__main__":
    main("check")
