"""A whole family added from outside the repository: one package, one registration, end to end.

The throw-away family keeps every `stride`-th weight of each layer. It lives in a temporary
package that registers itself when imported (a built-in family's package does the same, and
its name in prunelab/families/__init__.py is the import). Nothing in prunelab is edited.
"""

from __future__ import annotations

import csv
import sys
import textwrap

import pytest

from prunelab import config, family, paths
from prunelab.atomic import load_torch
from prunelab.cli import run
from prunelab.errors import UserError

TOY_FAMILY = '''
"""Keep every `stride`-th weight of each layer (by flat index), in one round."""

import torch
from pydantic import Field

from prunelab import family
from prunelab.config import Section
from prunelab.config.plugins import FamilySchema
from prunelab.family import Family, register
from prunelab.pruning.mask_pruner import MaskPruner


class StrideConfig(Section):
    stride: int = Field(2, ge=2)


class StridePrune(Section):
    stride: StrideConfig = StrideConfig()  # [prune.stride]


class StridePruner(MaskPruner):
    def round_masks(self, k, current):
        every = self.exp.prune.stride.stride
        return {name: (torch.arange(mask.numel()) % every == 0).view_as(mask) for name, mask in current.items()}


def sections(inputs):
    if inputs.exp.prune is None or family.of(inputs.exp).name != "stride":
        return []
    return ["## Stride", f"Every {inputs.exp.prune.stride.stride}th weight kept."]


def check(prune):
    if prune.iterations != 1:
        raise ValueError("iterations: the stride family prunes in one round")


SCHEMA = FamilySchema(name="stride", selected_by='method = "every_nth"', claims=lambda prune: prune.method == "every_nth",
                      check=check, prune_fields=StridePrune, methods=("every_nth",))
FAMILY = register(Family(schema=SCHEMA, title="every n-th weight", pruner=StridePruner,
                         describe=lambda exp: f"every {exp.prune.stride.stride}th weight", report_sections=sections))
'''


@pytest.fixture
def stride_family(tmp_path, monkeypatch):
    package = tmp_path / "plugins" / "stride_family"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(TOY_FAMILY))
    monkeypatch.syspath_prepend(str(package.parent))
    __import__("stride_family")
    yield
    family.unregister("stride")
    sys.modules.pop("stride_family", None)


def _toy_prune(stride: int = 3, **extra) -> dict:
    return {"method": "every_nth", "iterations": 1, "stride": {"stride": stride}, "finetune": {"epochs": 1, "lr": 0.01},
            **extra}


def test_a_family_registered_at_run_time_prunes_tests_and_reports(stride_family, tiny_config):
    path = tiny_config(prune=_toy_prune())
    assert run("reproduce", [str(path)]) == 0
    exp = config.load(path)
    assert family.of(exp).name == "stride"
    pruned = load_torch(paths.pruned(exp))
    for name, mask in pruned["masks"].items():
        assert int(mask.sum()) == -(-mask.numel() // 3)  # ceil(n / 3): flat indices 0, 3, 6, ...
        assert (pruned["model"][name][~mask] == 0).all()  # zeros held through fine-tuning
    log = list(csv.DictReader(paths.prune_log(exp).open()))
    assert [row["round"] for row in log] == ["1"]
    report = paths.report(exp).read_text()
    assert "every 3th weight" in report and "## Stride\n\nEvery 3th weight kept." in report


def test_its_keys_are_checked_like_any_family(stride_family):
    with pytest.raises(UserError, match=r"x\.toml: prune\.stride\.stride: Input should be greater than or equal to 2"):
        config.parse({"name": "x", "prune": _toy_prune(stride=1)}, "x.toml")
    with pytest.raises(UserError, match=r"x\.toml: prune\.iterations: the stride family prunes in one round"):
        config.parse({"name": "x", "prune": _toy_prune(iterations=2)}, "x.toml")
    with pytest.raises(UserError, match=r"stride needs method = \"every_nth\" \(the stride family\)"):
        config.parse({"name": "x", "prune": {"sparsity": 0.5, "stride": {"stride": 4}}}, "x.toml")


def test_without_the_family_its_keys_are_unknown():
    with pytest.raises(UserError, match=r"x\.toml: prune\.method: Input should be"):
        config.parse({"name": "x", "prune": _toy_prune()}, "x.toml")
