"""report: see prunelab.stages. Usage: python tasks/report.py CONFIG [--set key=value ...] [--force]"""

from prunelab.cli import main

if __name__ == "__main__":
    main("report")
