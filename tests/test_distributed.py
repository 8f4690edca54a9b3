"""Training on several processes (DistributedDataParallel, gloo on the CPU, 2 ranks): the loader's
shards put back together are the single-process batches; `fit` on 2 ranks ends within float
tolerance of one process at the same global batch (masks, mixup, crop and flip, a penalty, an
uneven and an empty share, resume); only rank 0 writes; and torchrun runs tasks/train.py (and,
marked slow, tasks/prune.py) end to end."""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn

from prunelab import config, distributed, paths
from prunelab import train as train_module
from prunelab.atomic import load_torch
from prunelab.config import OptimConfig
from prunelab.data.loader import TensorLoader
from prunelab.errors import UserError
from prunelab.pruning.masks import MaskSet
from prunelab.stages import get_dataset, prune, train
from prunelab.train import KeepMasks, TrainHook, fit

ROOT = Path(__file__).resolve().parents[1]
WORLD = 2
BATCH = 20  # global images per step: 10 per rank
# Float tolerance between 2 ranks and 1 process: DDP sums the ranks' gradients in another order
# than one process sums a batch, a difference of ~1e-7 relative per step that grows slowly.
TOLERANCE = dict(rtol=1e-4, atol=1e-5)
# Training-set sizes: 251 = 12 batches of 20 + 11 (shares of 6 and 5); 241 ends with 1 image (1 and 0).
SIZES = (251, 241)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _loader(count: int, augment: tuple[str, ...] = ("crop", "flip")) -> TensorLoader:
    generator = torch.Generator().manual_seed(count)
    images = torch.randint(0, 256, (count, 1, 8, 8), generator=generator, dtype=torch.uint8)
    labels = torch.randint(0, 10, (count,), generator=generator)
    return TensorLoader(images, labels, BATCH, (0.5,), (0.25,), shuffle=True, seed=3, augment=augment, crop_padding=1)


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def _mask_hook(model: nn.Module, seed: int = 5) -> KeepMasks:
    mask = torch.rand(32, 64, generator=torch.Generator().manual_seed(seed)) < 0.5
    return KeepMasks(MaskSet(model, {"1.weight": mask}))


class L1(TrainHook):
    """A penalty on every weight, logged in its own column (as a family's regularizer is)."""

    column = "l1"

    def penalty(self, model: nn.Module) -> torch.Tensor:
        return 1e-4 * sum(parameter.abs().sum() for parameter in model.parameters())


def _scenario(directory: Path) -> dict:
    """What each rank (and the one process) runs: masked training with mixup, interrupted after
    epoch 1 and resumed from the state file into a freshly built model, then a third epoch on the
    same model (wrapped in DDP a second time, as a prune stage's rounds do); and one epoch whose
    last global batch holds a single image, with a penalty. Each rank but 0 starts the resumed training with masks
    of its own: rank 0's are broadcast, so the run must still match one process."""
    cfg = OptimConfig(epochs=1, lr=0.05, schedule="constant", mixup_alpha=0.4)
    first = _model(0)
    fit(first, _loader(SIZES[0]), _loader(60, ()), cfg, directory / "state.pt", "h", hooks=[_mask_hook(first)])
    resumed = _model(1 + distributed.rank())  # different weights per rank: only the state file can align them
    for epochs in (2, 3):
        log = fit(resumed, _loader(SIZES[0]), _loader(60, ()), cfg.model_copy(update={"epochs": epochs}),
                  directory / "state.pt", "h", hooks=[_mask_hook(resumed, 5 + distributed.rank())])
    short = _model(2)
    short_log = fit(short, _loader(SIZES[1], ()), _loader(60, ()), cfg.model_copy(update={"mixup_alpha": 0.0}),
                    directory / "short.pt", "h", hooks=[L1()])
    return {"resumed": resumed.state_dict(), "log": log + short_log, "short": short.state_dict()}


def _rank(rank: int, port: int, directory: Path) -> None:
    """One rank, as torchrun would start it (spawned by torch.multiprocessing)."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    writes: list[str] = []
    real_save = train_module.save_torch
    train_module.save_torch = lambda path, obj: (writes.append(Path(path).name), real_save(path, obj))
    distributed.setup(SimpleNamespace(path="test.toml", data=SimpleNamespace(batch_size=BATCH)), torch.device("cpu"))
    result = _scenario(directory / "shared")
    torch.save({**result, "writes": writes}, directory / f"rank{rank}.pt")


def test_shards_put_together_are_the_single_process_batches():
    for count in SIZES:
        whole = _loader(count)
        shards = [_loader(count).shard(rank, WORLD) for rank in range(WORLD)]
        for loader in (whole, *shards):
            loader.set_epoch(1)
        for step, (batch, *parts) in enumerate(zip(whole, *shards)):
            assert whole.batch_count(step) == len(batch[1])
            assert torch.equal(torch.cat([images for images, _ in parts]), batch[0])  # same crops and flips
            assert torch.equal(torch.cat([labels for _, labels in parts]), batch[1])
        assert [len(labels) for _, labels in shards[1]][-1] == (5 if count == 251 else 0)


def test_share_splits_any_count_in_rank_order():
    for count in range(0, 13):
        for world in (1, 2, 3, 4):
            bounds = [distributed.share(count, rank, world) for rank in range(world)]
            assert bounds[0][0] == 0 and bounds[-1][1] == count
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_a_batch_size_that_does_not_split_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    exp = SimpleNamespace(path="x.toml", data=SimpleNamespace(batch_size=100))
    with pytest.raises(UserError, match=r"x.toml: data.batch_size: 100 images per step do not split evenly over "
                                        r"3 processes \(WORLD_SIZE\); use a multiple of 3"):
        distributed.setup(exp, torch.device("cpu"))
    assert not distributed.active()


def test_one_process_is_untouched(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    device = distributed.setup(SimpleNamespace(path="x.toml", data=SimpleNamespace(batch_size=7)),
                               torch.device("cpu"))
    assert device == torch.device("cpu") and not distributed.active()
    model = _model(0)
    assert distributed.wrap(model) is model and (distributed.rank(), distributed.world_size()) == (0, 1)


def test_two_ranks_train_like_one_process_and_only_rank_zero_writes(tmp_path):
    mp.spawn(_rank, args=(_free_port(), tmp_path), nprocs=WORLD, join=True)
    (tmp_path / "single").mkdir()
    single = _scenario(tmp_path / "single")
    ranks = [torch.load(tmp_path / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD)]
    assert ranks[0]["writes"] == ["state.pt"] * 3 + ["short.pt"] and ranks[1]["writes"] == []
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["short.pt", "state.pt"]
    for key in ("resumed", "short"):
        for name, tensor in single[key].items():
            assert torch.equal(ranks[0][key][name], ranks[1][key][name])  # DDP keeps the ranks identical
            assert torch.allclose(ranks[0][key][name], tensor, **TOLERANCE), (key, name)
    pruned = ~_mask_hook(_model(0)).masks.masks["1.weight"]
    assert all((rank["resumed"]["1.weight"][pruned] == 0).all() for rank in ranks)
    untimed = [[{k: v for k, v in row.items() if k != "seconds"} for row in rank["log"]] for rank in ranks]
    assert untimed[0] == untimed[1]  # every rank logs the same rows
    for got, want in zip(ranks[0]["log"], single["log"], strict=True):
        assert got["test_accuracy"] == want["test_accuracy"]
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=1e-5)
    assert ranks[0]["log"][-1]["l1"] == pytest.approx(single["log"][-1]["l1"], rel=1e-5)


@pytest.fixture
def trained_once(tiny_config):
    """The tiny experiment (2,000 images, LeNet-300-100) trained in this process: the reference for torchrun."""
    path = tiny_config(train={"epochs": 2})
    exp = config.load(path)
    get_dataset(exp)
    train(exp)
    return path, exp


def _torchrun(task: str, path: Path, results: Path) -> tuple[config.Experiment, str]:
    """`torchrun --nproc-per-node 2 tasks/<task>.py CONFIG` with results under `results`: (its experiment, stdout)."""
    override = f"results_root={json.dumps(str(results))}"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(WORLD), "--master-addr",
               "127.0.0.1", "--master-port", str(_free_port()), str(ROOT / "tasks" / f"{task}.py"), str(path),
               "--set", override]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, cwd=path.parent, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return config.load(path, [override]), done.stdout


def _same_weights(got: dict, want: dict, masks: dict | None = None) -> bool:
    keep = masks or {}
    return all(torch.allclose(got[name] * keep.get(name, 1), want[name] * keep.get(name, 1), **TOLERANCE)
               for name in want)


def test_torchrun_trains_like_one_process(trained_once):
    path, single = trained_once
    other, stdout = _torchrun("train", path, path.parent / "torchrun")
    assert stdout.count("train epoch 2/2") == 1  # rank 1 prints nothing
    assert sorted(p.name for p in paths.dense(other).parent.iterdir()) == ["dense.pt", "train_log.csv"]
    assert _same_weights(load_torch(paths.dense(other))["model"], load_torch(paths.dense(single))["model"])
    rows = [list(csv.DictReader(paths.train_log(exp).open())) for exp in (single, other)]
    for want, row in zip(*rows, strict=True):
        assert row["test_accuracy"] == want["test_accuracy"]
        assert float(row["train_loss"]) == pytest.approx(float(want["train_loss"]), rel=1e-5)


@pytest.mark.slow
def test_torchrun_prunes_like_one_process(trained_once):
    """Two rounds of magnitude pruning, each fine-tuned under DDP, from the same dense model."""
    path, single = trained_once
    prune(single)
    results = path.parent / "torchrun"
    paths.dense(config.load(path, [f"results_root={json.dumps(str(results))}"])).parent.mkdir(parents=True)
    shutil.copy(paths.dense(single), results / single.name / "dense.pt")
    other, _ = _torchrun("prune", path, results)
    names = sorted(p.name for p in paths.pruned(other).parent.iterdir())
    copied = sorted(p.name for p in paths.pruned(single).parent.iterdir() if p.name != "train_log.csv")
    assert names == copied  # the round checkpoints, both logs, pruned.pt: no state files left
    got, want = load_torch(paths.pruned(other)), load_torch(paths.pruned(single))
    for name, mask in got["masks"].items():
        assert (got["model"][name][~mask] == 0).all()
        # Magnitudes within float tolerance of one process's: a weight at the threshold may swap with its neighbour.
        assert int((mask != want["masks"][name]).sum()) <= 4
    both = {name: mask & want["masks"][name] for name, mask in got["masks"].items()}
    assert _same_weights(got["model"], want["model"], both)
