"""prune: see prunelab.stages. Usage: python tasks/prune.py CONFIG [--set key=value ...] [--force]"""

from prunelab.cli import main

if __name__ == "__main__":
    main("prune")
