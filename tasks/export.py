"""export: see prunelab.stages. Usage: python tasks/export.py CONFIG [--set key=value ...] [--force]"""

from prunelab.cli import main

if __name__ == "__main__":
    main("export")
