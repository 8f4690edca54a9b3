"""sweep: run every cell of the config's [sweep] grid (resumable; --jobs N runs N cells at once, --shard K/N
one slice of the grid), then collect sweep.json."""

from prunelab.cli import main

if __name__ == "__main__":
    main("sweep")
