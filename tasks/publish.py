"""publish: see prunelab.stages.publish. Usage: python tasks/publish.py CONFIG [--allow-overrides]"""

from prunelab.cli import main

if __name__ == "__main__":
    main("publish")
