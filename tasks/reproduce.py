"""reproduce: get-dataset, train, prune, test, report in order, skipping finished stages."""

from prunelab.cli import main

DEFAULT_CONFIG = "configs/lenet5.toml"

if __name__ == "__main__":
    main("reproduce", default_config=DEFAULT_CONFIG)
