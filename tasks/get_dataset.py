"""get-dataset: see prunelab.stages. Usage: python tasks/get_dataset.py CONFIG [--set key=value ...] [--force]"""

from prunelab.cli import main

if __name__ == "__main__":
    main("get_dataset")
