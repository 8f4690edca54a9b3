"""sweep: run every cell of the config's [sweep] grid (resumable), then collect sweep.json."""

from prunelab.cli import main

if __name__ == "__main__":
    main("sweep")
