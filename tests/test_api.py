"""prunelab.api on a network and data of the caller's own: exact counts and zeros held, the same masks
the families' functions select from the same [prune] table, filters removed by their norm, a
compressed file that decodes bit for bit, the per-layer tables, and bad options as one-line
prunelab.UserErrors naming the call."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

import prunelab
from prunelab import api, config, errors
from prunelab.data.loader import TensorLoader
from prunelab.families.at_init.scores import at_init_masks
from prunelab.families.compression.container import decode
from prunelab.families.magnitude.pruner import magnitude_masks

PRUNED = ("conv1.weight", "conv2.weight")  # prunable by default: conv/linear weights but the classifier


class Net(nn.Module):
    """8 and 16 3x3 filters on 1 x 8 x 8 images, BatchNorm after the first conv, 4 classes."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 4 * 4, 4)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return self.fc(F.max_pool2d(x, 2).flatten(1))


def _net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


def _loader() -> DataLoader:
    generator = torch.Generator().manual_seed(1)
    images, labels = torch.rand(48, 1, 8, 8, generator=generator), torch.randint(0, 4, (48,), generator=generator)
    return DataLoader(TensorDataset(images, labels), batch_size=16)


def _weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach() for name, p in model.named_parameters()}


@pytest.mark.parametrize("method", ["magnitude", "random", "snip", "grasp", "synflow"])
@pytest.mark.parametrize("scope", ["layer", "global"])
def test_prune_keeps_exact_counts_and_zeroes_the_rest(method, scope):
    model = _net()
    head = model.fc.weight.detach().clone()
    masks = api.prune(model, _loader(), method=method, compression=4, scope=scope)
    assert sorted(masks.masks) == list(PRUNED)
    sizes = {name: masks.masks[name].numel() for name in PRUNED}
    kept = {name: int(masks.masks[name].sum()) for name in PRUNED}
    if scope == "layer":
        assert kept == {name: round(size / 4) for name, size in sizes.items()}
    else:
        assert sum(kept.values()) == round(sum(sizes.values()) / 4)
    weights = _weights(model)
    for name in PRUNED:
        assert not weights[name][~masks.masks[name]].any()
    assert torch.equal(model.fc.weight.detach(), head)  # the classifier is not pruned by default


TABLES = [
    ("magnitude", {"method": "magnitude", "compression": 3, "layer_sparsity": {"conv1": 0.5}}),
    ("magnitude", {"method": "magnitude", "quality": 0.7}),
    ("at_init", {"method": "snip", "compression": 5, "scope": "global", "at_init": {"score_batches": 3}}),
    ("at_init", {"method": "grasp", "density": 0.3, "scope": "global"}),
    ("at_init", {"method": "synflow", "compression": 8, "scope": "global", "at_init": {"synflow_rounds": 4}}),
    ("at_init", {"method": "magnitude", "start": "init", "compression": 6, "scope": "global",
                 "at_init": {"min_layer_density": 0.1}}),
]


@pytest.mark.parametrize("family, table", TABLES)
def test_prune_selects_what_the_family_selects_from_the_same_table(family, table):
    """The masks equal those of the function the family's pruner calls, given the [prune] table a
    config with these keys validates to."""
    cfg = config.parse({"name": "x", "prune": table}).prune
    reference = _net()
    current = {name: torch.ones_like(p, dtype=torch.bool) for name, p in _weights(reference).items() if name in PRUNED}
    if family == "magnitude":
        std = {name: _weights(reference)[name].std().item() for name in PRUNED}
        expected = magnitude_masks(cfg, 1, reference, current, std)
    else:
        expected = at_init_masks(cfg, 1, reference, current, _loader())
    table = dict(table)
    masks = api.prune(_net(), _loader(), table.pop("method"), **table)
    assert all(torch.equal(masks.masks[name], expected[name].bool()) for name in PRUNED)


def test_masks_only_shrink_and_hold_through_training():
    model = _net()
    masks = api.prune(model, compression=2)
    first = {name: mask.clone() for name, mask in masks.masks.items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, weight_decay=1e-3)
    masks.attach(optimizer)
    for images, labels in _loader():
        optimizer.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        optimizer.step()
    weights = _weights(model)
    assert all(not weights[name][~mask].any() for name, mask in masks.masks.items())
    again = api.prune(model, compression=8, masks=masks)  # a second round on the trained weights
    assert again is masks and masks.density() == pytest.approx(1 / 8, abs=0.01)
    assert all(not (masks.masks[name] & ~first[name]).any() for name in PRUNED)


def test_score_images_takes_prunelabs_loader_and_refuses_another():
    images = (torch.rand(48, 1, 8, 8, generator=torch.Generator().manual_seed(2)) * 255).to(torch.uint8)
    labels = torch.randint(0, 4, (48,), generator=torch.Generator().manual_seed(3))
    loader = TensorLoader(images, labels, 16, mean=(0.5,), std=(0.25,), seed=4)
    masks = api.prune(_net(), loader, "snip", compression=4, at_init={"score_images": 20})
    assert masks.density() == pytest.approx(0.25, abs=0.01)
    with pytest.raises(prunelab.UserError, match=r"prune\.at_init\.score_images .* score_batches"):
        api.prune(_net(), _loader(), "snip", compression=4, at_init={"score_images": 20})


def test_apply_masks_zeroes_and_keeps_zero():
    model = _net()
    wanted = {"conv2.weight": torch.rand(16, 8, 3, 3, generator=torch.Generator().manual_seed(5)) > 0.5}
    masks = api.apply_masks(model, wanted)
    assert not model.conv2.weight.detach()[~wanted["conv2.weight"]].any()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    masks.attach(optimizer)
    images, labels = next(iter(_loader()))
    F.cross_entropy(model(images), labels).backward()
    optimizer.step()
    assert not model.conv2.weight.detach()[~wanted["conv2.weight"]].any()


def test_remove_filters_keeps_the_largest_filters_and_shrinks_their_partners():
    dense = _net()
    model = api.remove_filters(copy.deepcopy(dense), torch.zeros(1, 1, 8, 8), criterion="l1", amount=0.5)
    assert (model.conv1.out_channels, model.bn1.num_features, model.conv2.in_channels) == (4, 4, 4)
    assert (model.conv2.out_channels, model.fc.in_features, model.fc.out_features) == (8, 128, 4)
    kept = dense.conv1.weight.detach().abs().flatten(1).sum(1).topk(4).indices.sort().values
    assert torch.equal(model.conv1.weight.detach(), dense.conv1.weight.detach()[kept])
    assert model(torch.rand(2, 1, 8, 8)).shape == (2, 4)


def test_compress_writes_a_file_that_decodes_bit_for_bit(tmp_path):
    model = _net()
    masks = api.prune(model, compression=4)
    trained = []

    def train(shared: nn.Module) -> None:  # one step on the shared weights, as a user's loop would
        optimizer = torch.optim.SGD([p for p in shared.parameters() if p.requires_grad], lr=0.1)
        images, labels = next(iter(_loader()))
        F.cross_entropy(shared(images), labels).backward()
        optimizer.step()
        trained.append(sum(p.numel() for n, p in shared.named_parameters() if n.endswith("codebook")))

    path = api.compress(model, tmp_path / "net.bin", bits=3, masks=masks, train=train)
    assert trained == [3 * 2**3]  # conv1, conv2 and fc each learn 8 shared values
    assert path.stat().st_size < 4 * sum(p.numel() for p in model.parameters()) / 3
    weights = _weights(model)
    for name in (*PRUNED, "fc.weight"):
        assert weights[name].unique().numel() <= 2**3 + 1  # the codebook and the pruned zeros
    assert all(not weights[name][~masks.masks[name]].any() for name in PRUNED)
    restored = api.load_compressed(path, _net(seed=1))
    assert all(torch.equal(a, b) for a, b in zip(restored.state_dict().values(), model.state_dict().values()))
    # load_compressed reads any config's file; the tasks' reader still refuses another config's.
    with pytest.raises(errors.UserError, match="made for config"):
        decode(path, "000000000000", {})
    with pytest.raises(errors.UserError, match="a file for another model"):
        api.load_compressed(path, nn.Linear(3, 3))


def test_layer_report_tables_count_the_kept_weights():
    dense = _net()
    pruned = copy.deepcopy(dense)
    api.prune(pruned, compression=4)
    text = api.layer_report(dense, pruned, (1, 8, 8))
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == ["## Parameters per layer", "## Size per layer", "## FLOPs per layer"]
    parameters = text.split("## Size per layer")[0].splitlines()
    kept = {cells[0]: cells[5] for cells in ([c.strip() for c in line.split("|")[1:-1]] for line in parameters
                                             if line.startswith("| conv") or line.startswith("| fc"))}
    assert kept == {"conv1": "25.00", "conv2": "25.00", "fc": "100.00"}
    with pytest.raises(prunelab.UserError, match="layers differ"):
        api.layer_report(dense, nn.Sequential(nn.Flatten(), nn.Linear(64, 4)), (1, 8, 8))


BAD = [
    (lambda: api.prune(_net(), _loader(), "snip", compression=0.5),
     "prunelab.api.prune(): prune.compression: Input should be greater than or equal to 1 (got 0.5)"),
    (lambda: api.prune(_net(), _loader(), "snip", compresion=4), "prune.compresion: unknown key; did you mean"),
    (lambda: api.prune(_net(), None, "snip", compression=4), "score 'snip' needs training batches"),
    (lambda: api.prune(_net(), _loader(), "magnitude", compression=4, layer_sparsity={"conv9": 0.5}),
     "prune.layer_sparsity.conv9: no prunable layer of that name (prunable: conv1, conv2)"),
    (lambda: api.prune(_net(), _loader(), "threshold", std_ratio=0.5), "this table selects the deephoyer family"),
    (lambda: api.prune(_net(), _loader(), "snip", compression=4, finetune={"epochs": 1}),
     "prune.finetune: prune() does not train"),
    (lambda: api.prune(_net(), _loader(), "synflow", compression=4, at_init={"pre_epochs": 1}), "pre_epochs"),
    (lambda: api.apply_masks(_net(), {"conv9.weight": torch.ones(1, dtype=torch.bool)}), "conv9.weight: no parameter"),
    (lambda: api.remove_filters(_net(), torch.zeros(1, 1, 8, 8), "l7"), "prune.filters.criterion: Input should be"),
    (lambda: api.remove_filters(_net(), torch.zeros(1, 1, 8, 8), "taylor"), "'taylor': taylor importance needs"),
    (lambda: api.remove_filters(_net(), torch.zeros(1, 1, 8, 8), ignored_layers=["conv9"]), "no module 'conv9' in Net"),
    (lambda: api.compress(_net(), "x.bin", bits=9), "compress.conv_bits: Input should be less than or equal to 8"),
    (lambda: api.compress(_net(), "x.bin", bits=4, fc_bits=3), "give bits or conv_bits / fc_bits, not both"),
    (lambda: api.compress(_net(), "x.bin", bits=4, quantizer="fixed"), "bits is the k-means codebook width"),
    (lambda: api.load_compressed("missing.bin", _net()), "missing.bin: not found"),
]


@pytest.mark.parametrize("call, message", BAD)
def test_bad_input_is_one_line_naming_the_call(call, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(prunelab.UserError) as raised:
        call()
    text = str(raised.value)
    assert message in text and "\n" not in text
    assert text.startswith("prunelab.api.") or text.startswith("missing.bin")
    assert not (tmp_path / "x.bin").exists()


def test_user_error_is_the_packages_one():
    assert prunelab.UserError is errors.UserError and api.UserError is errors.UserError
