"""Drop-in sparse replacements of a pruned nn.Linear / nn.Conv2d: same inputs, same outputs up to float
rounding (the sums run in another order), weights that are zero skipped.

Each is built from a pruned layer whose masked weights are exactly zero (pruning/masks.py keeps them so).
A layer's input mask (pruning/activations.py: whole input channels zeroed by a forward pre-hook) is folded
into the weight instead: W (x * m) = (W * m) x for finite inputs, so the replacement needs no hook and its
weight is sparser still. The modules are for measuring inference (no gradients; tensors are buffers).
"""

from __future__ import annotations

import warnings
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

from ..pruning.activations import live_weights


def folded_weight(module: nn.Module) -> torch.Tensor:
    """The layer's weight with its masked entries and the weights on masked input channels set to 0."""
    weight = module.weight.detach()
    return weight * live_weights(module).to(weight.dtype)


def _csr(weight: torch.Tensor) -> torch.Tensor:
    """A 2-d weight in CSR, without torch's "sparse CSR support is in beta" warning on every layer."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Sparse CSR tensor support is in beta", UserWarning)
        return weight.to_sparse_csr()


def _bias_column(module: nn.Module, rows: int, like: torch.Tensor) -> torch.Tensor:
    """The bias as a (rows, 1) column added to a (rows, positions) product; zeros when the layer has none."""
    bias = module.bias.detach() if module.bias is not None else torch.zeros(rows, dtype=like.dtype, device=like.device)
    return bias.reshape(rows, 1).clone()


class CsrLinear(nn.Module):
    """y = x W^T + b as torch.addmm(b, W_csr, x^T)^T: the CSR weight times the input's transpose.

    Of PyTorch's sparse products this one measured fastest on the CPU (MKL, 1 thread, LeNet-300-100's
    layers at densities 1/12 and 1/60, docs/speed.md): x @ W_csr^T (dense times sparse) was 4-5x slower, COO
    10x slower. The result is a transposed view of the (out, N) product; a following CsrLinear takes its
    transpose again, which is contiguous, so a chain of them copies nothing.
    """

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = folded_weight(linear)
        self.register_buffer("weight", _csr(weight))
        self.register_buffer("bias", _bias_column(linear, self.out_features, weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lead = x.shape[:-1]
        product = torch.addmm(self.bias, self.weight, x.reshape(-1, self.in_features).t())  # (out, N)
        return product.t().reshape(*lead, self.out_features)


class CsrConv2d(nn.Module):
    """A convolution as im2col + CSR: the input's patches as columns (C*kh*kw, N*H'*W'), then
    addmm(b, W_csr (out, C*kh*kw), columns). groups = 1, dilation 1, zero padding given as numbers.

    The patches are strided views of the padded input (Tensor.unfold) laid out channel-major by one copy;
    this measured faster than F.unfold's layout. The result is the (out, N, H', W') product seen as
    (N, out, H', W') (a permuted view, no copy).
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        reason = conv_unsupported(conv)
        if reason:
            raise ValueError(reason)
        self.out_channels = conv.out_channels
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding
        weight = folded_weight(conv)
        self.register_buffer("weight", _csr(weight.reshape(conv.out_channels, -1)))
        self.register_buffer("bias", _bias_column(conv, conv.out_channels, weight))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph))
        patches = x.unfold(2, kh, sh).unfold(3, kw, sw)  # (N, C, H', W', kh, kw), a view
        n, c, out_h, out_w = patches.shape[:4]
        columns = patches.permute(1, 4, 5, 0, 2, 3).reshape(c * kh * kw, n * out_h * out_w)
        product = torch.addmm(self.bias, self.weight, columns)  # (out, N*H'*W')
        return product.view(self.out_channels, n, out_h, out_w).transpose(0, 1)


def conv_unsupported(conv: nn.Conv2d) -> Optional[str]:
    """Why CsrConv2d cannot stand in for `conv` (None when it can)."""
    if conv.groups != 1:
        return "grouped convolution"
    if conv.dilation != (1, 1):
        return "dilated convolution"
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        return f"padding {conv.padding!r} ({conv.padding_mode})"
    return None


class SemiStructuredLinear(nn.Module):
    """A linear layer whose weight has the 2:4 pattern (at most 2 nonzero weights in every 4 consecutive
    inputs), stored with torch.sparse.to_sparse_semi_structured: CUDA only, fp16 or bf16. It computes in
    the weight's dtype: the model it sits in runs in that dtype (kernels/measure.py converts it)."""

    def __init__(self, linear: nn.Linear, dtype: torch.dtype):
        super().__init__()
        # cuSPARSELt when this torch has it, else CUTLASS (PyTorch's semi-structured tutorial does the same)
        SparseSemiStructuredTensor._FORCE_CUTLASS = not torch.backends.cusparselt.is_available()
        weight = folded_weight(linear).to(dtype).contiguous()
        self.weight = nn.Parameter(to_sparse_semi_structured(weight), requires_grad=False)
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().to(dtype), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

