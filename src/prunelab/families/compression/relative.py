"""A sparse layer's two parts before Huffman coding (Han et al. 2016, Fig. 2 and 3): relative indices
with filler zeros, and the codebook its weight symbols index.

Relative indices: entry i sits at flat (row-major) position p_i and stores the gap
g_i = p_i - p_{i-1} - 1 in N bits, p_{-1} = -1. A gap above 2**N - 1 is bridged by filler entries:
gap 2**N - 1 and the weight symbol `filler` (K, one past the codebook, meaning zero); each advances
the position by 2**N, so g // 2**N fillers precede the kept weight, which then stores g % 2**N.
Fillers only ever precede a kept weight, so a stream never ends with one.

Codebook bytes: u8 kind; k-means (0): u32 K, K float32; fixed point (1): u8 total bits, i8 fraction bits.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
import torch

from .huffman import FormatError, Reader

KMEANS, FIXED = 0, 1  # codebook kinds in the file
MAX_CODEBOOK = 1 << 16  # K <= 2**16 (16-bit fixed point): K + 1 weight symbols fit 3 table bytes


def to_relative(positions: np.ndarray, symbols: np.ndarray, index_bits: int,
                filler: int) -> tuple[np.ndarray, np.ndarray]:
    """(gaps, weight symbols) of every entry, fillers included, for sorted distinct positions."""
    positions = np.asarray(positions, dtype=np.int64)
    gaps = np.diff(positions, prepend=np.int64(-1)) - 1
    fillers = gaps >> index_bits  # entries of gap 2**N - 1 needed before each kept weight
    slots = np.cumsum(fillers + 1) - 1  # entry index of each kept weight
    entries = int(slots[-1]) + 1 if len(slots) else 0
    widest = (1 << index_bits) - 1
    entry_gaps = np.full(entries, widest, dtype=np.int64)
    entry_gaps[slots] = gaps & widest
    entry_symbols = np.full(entries, filler, dtype=np.int64)
    entry_symbols[slots] = symbols
    return entry_gaps, entry_symbols


def from_relative(gaps: np.ndarray, symbols: np.ndarray, index_bits: int, filler: int,
                  numel: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, symbols) of the kept weights; positions are checked to lie below numel."""
    positions = np.cumsum(gaps + 1) - 1  # gaps < 2**16 and entries <= numel: no int64 overflow
    if len(positions) and positions[-1] >= numel:
        raise FormatError(f"entries reach position {int(positions[-1])}, past the {numel} elements of the shape")
    is_filler = symbols == filler
    if len(symbols) and is_filler[-1]:
        raise FormatError("the entries end with a filler (fillers only precede a kept weight)")
    if np.any(gaps[is_filler] != (1 << index_bits) - 1):
        raise FormatError(f"a filler entry has a gap other than 2**{index_bits} - 1")
    kept = ~is_filler
    return positions[kept], symbols[kept]


def fixed_levels(total_bits: int, frac_bits: int) -> np.ndarray:
    """The 2**total_bits fixed-point values, float32, computed as quantize.fixed_point does (same bits)."""
    half = 2 ** (total_bits - 1)
    return (torch.arange(-half, half, dtype=torch.float32) / 2.0**frac_bits).numpy()


@dataclass
class Codebook:
    """A layer's shared values: k-means values (float32, 1 <= K <= 2**16) or the fixed-point grid,
    K = 2**total_bits (1..16), symbol s meaning (s - 2**(total_bits - 1)) / 2**frac_bits (-128..127)."""

    kind: str  # "kmeans" or "fixed"
    values: np.ndarray | torch.Tensor | None = None
    total_bits: int = 0
    frac_bits: int = 0

    def encoded(self) -> tuple[bytes, int]:
        """(the codebook's bytes in the file, K); ValueError for one the format cannot hold."""
        if self.kind == "fixed":
            if not (1 <= self.total_bits <= 16 and -128 <= self.frac_bits <= 127):
                raise ValueError(f"fixed point of {self.total_bits} bits, {self.frac_bits} fractional: out of range")
            return struct.pack("<BBb", FIXED, self.total_bits, self.frac_bits), 1 << self.total_bits
        values = self.values.detach().cpu().numpy() if isinstance(self.values, torch.Tensor) else self.values
        if self.kind != "kmeans" or values is None or values.dtype != np.float32 or values.ndim != 1:
            raise ValueError(f"codebook {self.kind!r}: want kind 'fixed', or 'kmeans' with float32 values (K,)")
        if not 1 <= len(values) <= MAX_CODEBOOK:
            raise ValueError(f"k-means codebook of {len(values)} values (1 to {MAX_CODEBOOK} allowed)")
        return struct.pack("<BI", KMEANS, len(values)) + values.astype("<f4").tobytes(), len(values)


def read_codebook(reader: Reader) -> np.ndarray:
    """A stored codebook's K values, float32; K is checked before its 4 * K bytes are read."""
    (kind,) = reader.unpack("B", "codebook kind")
    if kind == FIXED:
        total_bits, frac_bits = reader.unpack("Bb", "fixed-point widths")
        if not 1 <= total_bits <= 16:
            raise FormatError(f"fixed point of {total_bits} bits (1 to 16 allowed)")
        return fixed_levels(total_bits, frac_bits)
    if kind != KMEANS:
        raise FormatError(f"unknown codebook kind {kind}")
    (k,) = reader.unpack("I", "codebook size")
    if not 1 <= k <= MAX_CODEBOOK:
        raise FormatError(f"codebook of {k} values (1 to {MAX_CODEBOOK} allowed)")
    return np.frombuffer(reader.take(4 * k, "codebook"), dtype="<f4").astype(np.float32)
