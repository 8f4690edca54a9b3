"""CIFAR models: shapes, exact params/MACs from the layer plans, literature sizes, torch-pruning graphs.

The expected counts are built here from each architecture's layer plan, never
from the model. fvcore's conventions (prunelab.metrics): a conv costs
cin/groups * cout * k * k * H_out * W_out MACs and a Linear in * out (biases
are free); an eval-mode affine BatchNorm costs 2 per element; the global
average pool 1 per input element; ReLU, max-pool and residual adds are free.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn as nn
import torch_pruning as tp

from prunelab.metrics import flops_by_module
from prunelab.models import MODELS, build

CIFAR_MODELS = [name for name in MODELS.names() if not name.startswith("lenet")]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """These tiny batches run 5-10x faster on one thread when the 2 shared cores are busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@functools.lru_cache(maxsize=None)
def cifar(arch: str) -> nn.Module:
    """One shared 3x32x32, 10-class instance per architecture, for the tests that only read it."""
    torch.manual_seed(0)
    return build(arch, in_channels=3, num_classes=10, image_size=32).eval()


class Plan:
    """Running totals of parameters, conv/linear MACs and the other fvcore FLOPs."""

    def __init__(self):
        self.params = 0
        self.layer_macs = 0  # conv + linear only: what the papers count
        self.other_flops = 0  # BatchNorm and global pool, as fvcore counts them

    def conv(self, cin, cout, k, side, groups=1, bias=False, bn=True):
        """A k x k conv producing a side x side map, optionally followed by BatchNorm."""
        weights = cin // groups * cout * k * k
        self.params += weights + (cout if bias else 0)
        self.layer_macs += weights * side * side
        if bn:
            self.params += 2 * cout
            self.other_flops += 2 * cout * side * side

    def head(self, channels, side, classes=10):
        self.other_flops += channels * side * side  # adaptive average pool to 1x1
        self.params += channels * classes + classes
        self.layer_macs += channels * classes

    @property
    def total_flops(self):
        return self.layer_macs + self.other_flops


def vgg_plan(widths, pools_after, bn):
    """3x3 convs with bias; `pools_after` = indices of the convs followed by a 2x2 max-pool."""
    plan, cin, side = Plan(), 3, 32
    for index, cout in enumerate(widths):
        plan.conv(cin, cout, 3, side, bias=True, bn=bn)
        cin = cout
        if index in pools_after:
            side //= 2
    plan.head(cin, side)
    return plan


def cifar_resnet_plan(n):
    """He et al. CIFAR ResNet with 1x1 conv + BN shortcuts at the two downsampling blocks."""
    plan, side = Plan(), 32
    plan.conv(3, 16, 3, side)
    cin = 16
    for stage, width in enumerate([16, 32, 64]):
        for block in range(n):
            if stage > 0 and block == 0:
                side //= 2
                plan.conv(cin, width, 1, side)  # shortcut
            plan.conv(cin, width, 3, side)
            plan.conv(width, width, 3, side)
            cin = width
    plan.head(64, side)
    return plan


def mobilenet_v2_plan():
    """kuangliu's CIFAR MobileNetV2: expand, depthwise, project; 1x1+BN shortcut in stride-1 width changes."""
    stages = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    plan, side, cin = Plan(), 32, 32
    plan.conv(3, 32, 3, side)
    for expansion, cout, count, first_stride in stages:
        for block in range(count):
            stride = first_stride if block == 0 else 1
            hidden = expansion * cin
            plan.conv(cin, hidden, 1, side)
            side //= stride
            plan.conv(hidden, hidden, 3, side, groups=hidden)
            plan.conv(hidden, cout, 1, side)
            if stride == 1 and cin != cout:
                plan.conv(cin, cout, 1, side)
            cin = cout
    plan.conv(320, 1280, 1, side)
    plan.head(1280, side)
    return plan


VGG16_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
VGG19_WIDTHS = [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]
PLANS = {
    "vgg16": lambda: vgg_plan(VGG16_WIDTHS, {1, 3, 6, 9}, bn=False),
    "vgg16_bn": lambda: vgg_plan(VGG16_WIDTHS, {1, 3, 6, 9}, bn=True),
    "vgg19": lambda: vgg_plan(VGG19_WIDTHS, {1, 3, 7, 11}, bn=False),
    "vgg7": lambda: vgg_plan([128, 128, 256, 256, 512, 512], {1, 3, 5}, bn=True),
    "resnet20": lambda: cifar_resnet_plan(3),
    "resnet56": lambda: cifar_resnet_plan(9),
    "resnet110": lambda: cifar_resnet_plan(18),
    "mobilenet_v2": mobilenet_v2_plan,
}


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _layer_macs(model: nn.Module, by_module: dict[str, int]) -> int:
    return sum(by_module[name] for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


@pytest.mark.parametrize("arch", CIFAR_MODELS)
@pytest.mark.parametrize("in_channels, side", [(3, 32), (1, 28)])
def test_forward_shapes_on_cifar_and_fashion_mnist(arch, in_channels, side):
    torch.manual_seed(0)
    model = cifar(arch) if in_channels == 3 else build(arch, in_channels=in_channels, num_classes=10, image_size=side)
    with torch.no_grad():
        assert model(torch.randn(2, in_channels, side, side)).shape == (2, 10)
    assert isinstance(model.fc, nn.Linear)


@pytest.mark.parametrize("arch", sorted(PLANS))
def test_params_and_macs_match_the_layer_plan_exactly(arch):
    plan = PLANS[arch]()
    model = cifar(arch)
    assert _params(model) == plan.params
    by_module, total = flops_by_module(model, (3, 32, 32))
    assert _layer_macs(model, by_module) == plan.layer_macs
    assert total == plan.total_flops


# Literature sizes (conv + linear MACs). Tolerance 2%: He et al. / Li et al. use
# parameter-free option-A shortcuts (we add 2,752 parameters and ~1.3M MACs of
# 1x1 shortcut convs) and round to two or three digits.
LI_VGG16_HIDDEN_FC = 512 * 512 + 512  # Li et al.'s VGG-16 has a 512-512 layer before the classifier; ours does not
LITERATURE = {
    "vgg16": (14.7e6, 3.13e8),  # Li et al. 2017: 3.13e8 FLOPs (MACs); 14.7M without their hidden fc
    "resnet20": (0.27e6, 41e6),  # He et al. 2016: 0.27M
    "resnet56": (0.85e6, 1.25e8),  # Li et al. 2017
    "resnet110": (1.72e6, 2.53e8),  # Li et al. 2017 (He et al.: 1.7M)
}


@pytest.mark.parametrize("arch", sorted(LITERATURE))
def test_sizes_agree_with_the_literature(arch):
    params, macs = LITERATURE[arch]
    model = cifar(arch)
    by_module, _ = flops_by_module(model, (3, 32, 32))
    assert _params(model) == pytest.approx(params, rel=0.02)
    assert _layer_macs(model, by_module) == pytest.approx(macs, rel=0.02)


def test_vgg16_bn_plus_li_hidden_layer_gives_their_15m_params():
    # BatchNorm adds only 8,448 parameters (14.73M); Li et al.'s 1.5e7 comes from their extra 512-512 fc.
    params = _params(cifar("vgg16_bn"))
    assert params - _params(cifar("vgg16")) == 2 * 4224  # gamma and beta of 4,224 channels
    assert params + LI_VGG16_HIDDEN_FC == pytest.approx(1.5e7, rel=0.01)


@pytest.mark.parametrize("arch", CIFAR_MODELS)
def test_torch_pruning_can_remove_a_stem_filter(arch):
    torch.manual_seed(0)
    model = build(arch, in_channels=3, num_classes=10, image_size=32).eval()
    example = torch.randn(1, 3, 32, 32)
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
    stem = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    filters = stem.out_channels
    group = graph.get_pruning_group(stem, tp.prune_conv_out_channels, idxs=[0])
    assert len(group) > 1  # the filter's consumers (BN, next conv, residual partners) follow it
    group.prune()
    assert stem.out_channels == stem.weight.shape[0] == filters - 1
    with torch.no_grad():
        assert model(example).shape == (1, 10)
