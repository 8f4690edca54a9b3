"""compressed.bin (families/compression/container.py): encode -> decode is exact, the Huffman part is
near its entropy bound, the reported sizes are the file's, and damaged or foreign files are refused."""

from __future__ import annotations

import dataclasses
import json
import re
import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelab.errors import UserError
from prunelab.families.compression import huffman, relative
from prunelab.families.compression.container import (
    HEADER, Codebook, FileSizes, LayerSizes, RawTensor, SparseLayer, decode, encode,
)
from prunelab.families.compression.quantize import fixed_point, kmeans_share

HASH = "0123456789ab"


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal dtype, shape and bytes (so -0.0 differs from 0.0 and NaN equals the same NaN)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == torch.float32:
        return torch.equal(a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))
    return torch.equal(a, b)


def expected_of(tensors: dict[str, torch.Tensor]) -> dict:
    return {name: (tuple(t.shape), t.dtype) for name, t in tensors.items()}


def random_layer(rng: np.random.Generator, name: str, shape: tuple[int, ...], density: float, codebook: Codebook,
                 k: int, index_bits: int) -> tuple[SparseLayer, torch.Tensor]:
    """A sparse layer and the dense float32 tensor it must decode to."""
    numel = int(np.prod(shape))
    positions = np.flatnonzero(rng.random(numel) < density).astype(np.int64)
    symbols = rng.integers(0, k, len(positions))
    levels = (codebook.values if codebook.kind == "kmeans"
              else relative.fixed_levels(codebook.total_bits, codebook.frac_bits))
    dense = np.zeros(numel, np.float32)
    dense[positions] = levels[symbols]
    return SparseLayer(name, shape, positions, symbols, codebook, index_bits), torch.from_numpy(dense).reshape(shape)


@pytest.mark.parametrize("kind", ["kmeans", "fixed"])
@pytest.mark.parametrize("bits", range(1, 9))
def test_round_trip_every_weight_and_index_width(tmp_path: Path, kind: str, bits: int):
    rng = np.random.default_rng(bits)
    k = 2**bits
    for index_bits in range(1, 9):
        sections, want = [], {}
        for i, (shape, density) in enumerate([((37,), 0.0), ((12, 20), 0.05), ((6, 3, 5, 5), 0.3),
                                              ((8, 9), 1.0), ((4, 2, 3, 3), 0.6)]):
            if kind == "kmeans":  # any float32 values, fewer than 2**bits for some layers (k-means may merge)
                size = max(1, k - i)
                codebook = Codebook("kmeans", np.sort(rng.normal(size=size)).astype(np.float32))
            else:
                size = k
                codebook = Codebook("fixed", total_bits=bits, frac_bits=int(rng.integers(0, bits)))
            layer, dense = random_layer(rng, f"layer{i}.weight", shape, density, codebook, size, index_bits)
            sections.append(layer)
            want[layer.name] = dense
        sizes = encode(tmp_path / "c.bin", HASH, sections)
        got = decode(tmp_path / "c.bin", HASH, expected_of(want))
        assert got.keys() == want.keys()
        assert all(same_bits(got[name], want[name]) for name in want), (kind, bits, index_bits)
        if index_bits <= 2:  # sparse layers with short indices need fillers
            assert sum(s.fillers for s in sizes.sections) > 0


def test_raw_sections_round_trip(tmp_path: Path):
    special = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 1e-45, -3.4e38, 1.5])
    tensors = {
        "bias": torch.randn(10), "special": special, "scalar": torch.tensor(2.5), "empty": torch.zeros(0, 3),
        "running_var": torch.rand(2, 3, 4), "num_batches_tracked": torch.tensor(123456789012, dtype=torch.int64),
        "ints": torch.tensor([-(2**63), 2**63 - 1, 0, -1], dtype=torch.int64),
        **{f"mask{n}": torch.rand(n) > 0.5 for n in (1, 7, 8, 9, 17)}, "mask4d": torch.rand(3, 1, 5, 5) > 0.3,
    }
    sizes = encode(tmp_path / "c.bin", HASH, [RawTensor(name, t) for name, t in tensors.items()])
    got = decode(tmp_path / "c.bin", HASH, expected_of(tensors))
    assert all(same_bits(got[name], t) for name, t in tensors.items())
    data = {s.name: s.data_bytes for s in sizes.sections}
    assert data["mask9"] == 2 and data["mask8"] == 1 and data["bias"] == 40 and data["ints"] == 32


def test_decoded_layers_equal_the_quantizers_weights(tmp_path: Path):
    """Both quantizers' weights (Quantized.values(), what bake leaves in the model) come back bit for bit."""
    torch.manual_seed(0)
    weight = torch.randn(20, 30) * 0.3
    mask = torch.rand(20, 30) < 0.2
    layers = {"kmeans.weight": kmeans_share(weight, mask, 5), "fixed.weight": fixed_point(weight, mask, 8, 4)}
    sections = []
    for name, q in layers.items():
        codebook = (Codebook("kmeans", q.codebook.numpy()) if q.kind == "kmeans"
                    else Codebook("fixed", total_bits=q.bits, frac_bits=q.frac_bits))
        flat = q.mask.flatten()
        sections.append(SparseLayer(name, (20, 30), torch.nonzero(flat).flatten().numpy(),
                                    q.labels.flatten()[flat].numpy(), codebook, 5))
    encode(tmp_path / "c.bin", HASH, sections)
    got = decode(tmp_path / "c.bin", HASH, {name: ((20, 30), torch.float32) for name in layers})
    assert all(same_bits(got[name], q.values()) for name, q in layers.items())


def test_filler_zeros_bridge_long_gaps(tmp_path: Path):
    gaps, symbols = relative.to_relative(np.array([0, 20]), np.array([1, 2]), 3, filler=4)
    assert gaps.tolist() == [0, 7, 7, 3] and symbols.tolist() == [1, 4, 4, 2]  # positions 0, 8, 16, 20
    gaps, symbols = relative.to_relative(np.array([7, 16]), np.array([0, 3]), 3, filler=4)
    assert gaps.tolist() == [7, 7, 0] and symbols.tolist() == [0, 4, 3]  # 7 fits; 8 takes one filler
    codebook = Codebook("kmeans", np.array([-1.0, -0.5, 0.5, 1.0], np.float32))
    sizes = encode(tmp_path / "c.bin", HASH, [SparseLayer("w", (3, 7), np.array([0, 20]), np.array([1, 2]), codebook, 3)])
    layer = sizes.sections[0]
    assert (layer.entries, layer.fillers, layer.weight_bits, layer.index_bits) == (4, 2, 3, 3)
    want = torch.zeros(21)
    want[0], want[20] = -0.5, 0.5
    assert same_bits(decode(tmp_path / "c.bin", HASH, {"w": ((3, 7), torch.float32)})["w"], want.reshape(3, 7))


def test_one_and_zero_symbol_streams_cost_no_stream_bits(tmp_path: Path):
    codebook = Codebook("kmeans", np.array([0.25], np.float32))  # K = 1
    sections = [SparseLayer("dense", (4, 5), np.arange(20), np.zeros(20, np.int64), codebook, 2),  # all gaps 0
                SparseLayer("empty", (4, 5), np.zeros(0, np.int64), np.zeros(0, np.int64), codebook, 2)]
    sizes = encode(tmp_path / "c.bin", HASH, sections)
    dense, empty = sizes.sections
    assert dense.weight_stream_bits == dense.gap_stream_bits == 0 and dense.entries == 20
    assert empty.entries == 0 and empty.weight_stream_bytes == empty.gap_stream_bytes == 0
    got = decode(tmp_path / "c.bin", HASH, {"dense": ((4, 5), torch.float32), "empty": ((4, 5), torch.float32)})
    assert same_bits(got["dense"], torch.full((4, 5), 0.25)) and same_bits(got["empty"], torch.zeros(4, 5))


def test_entropy_bound():
    assert huffman.entropy_bits(np.array([0, 0, 1, 1])) == pytest.approx(4.0)
    assert huffman.entropy_bits(np.array([3] * 10)) == 0.0
    assert huffman.entropy_bits(np.array([0, 1, 2, 3])) == pytest.approx(8.0)


def test_huffman_part_is_within_one_percent_of_the_entropy_bound(tmp_path: Path):
    """20k weights, a quantized Gaussian over 32 levels; positions of a 10% dense mask, N = 5."""
    rng = np.random.default_rng(0)
    positions = np.flatnonzero(rng.random(200_000) < 0.1)
    symbols = np.clip(np.round(rng.normal(15.5, 5, len(positions))), 0, 31).astype(np.int64)
    codebook = Codebook("kmeans", np.linspace(-1, 1, 32).astype(np.float32))
    sizes = encode(tmp_path / "c.bin", HASH, [SparseLayer("w", (200_000,), positions, symbols, codebook, 5)])
    layer = sizes.sections[0]
    assert layer.fillers > 0 and 19_000 < layer.entries - layer.fillers < 21_000
    gaps, stream = relative.to_relative(positions, symbols, 5, filler=32)
    bound = huffman.entropy_bits(stream) + huffman.entropy_bits(gaps)
    assert bound == pytest.approx(layer.weight_entropy_bits + layer.gap_entropy_bits)
    table_bits = 8 * (layer.weight_table_bytes + layer.gap_table_bytes)
    assert layer.weight_stream_bits + layer.gap_stream_bits + table_bits <= 1.01 * (bound + table_bits)


def test_code_lengths_are_limited_for_the_decoder():
    """Fibonacci counts would give 39-bit codes; bitarray's decoder takes at most 31."""
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    code, count, order = huffman.canonical_code(dict(enumerate(fib)))
    assert len(count) - 1 <= huffman.MAX_CODE_BITS and sorted(order) == list(range(40))
    assert sum(n * 2.0 ** -bits for bits, n in enumerate(count)) == 1.0  # still a complete code


def mixed_file(path: Path) -> tuple[FileSizes, dict[str, torch.Tensor]]:
    """A small file with every kind of section: k-means and fixed-point layers, float, int and bool."""
    rng = np.random.default_rng(7)
    conv, conv_dense = random_layer(rng, "conv.weight", (4, 2, 3, 3), 0.3,
                                    Codebook("kmeans", np.linspace(-1, 1, 6).astype(np.float32)), 6, 2)
    fc, fc_dense = random_layer(rng, "fc.weight", (5, 8), 0.2, Codebook("fixed", total_bits=3, frac_bits=1), 8, 3)
    raw = {"conv.bias": torch.randn(4), "bn.num_batches_tracked": torch.tensor(9), "mask": torch.rand(11) > 0.5}
    sizes = encode(path, HASH, [conv, RawTensor("conv.bias", raw["conv.bias"]), fc,
                                RawTensor("bn.num_batches_tracked", raw["bn.num_batches_tracked"]),
                                RawTensor("mask", raw["mask"])])
    return sizes, {"conv.weight": conv_dense, "fc.weight": fc_dense, **raw}


def test_sizes_add_up_to_the_file(tmp_path: Path):
    path = tmp_path / "c.bin"
    sizes, _ = mixed_file(path)
    parts = sizes.header_bytes + sizes.trailer_bytes
    for s in sizes.sections:
        if isinstance(s, LayerSizes):
            parts += (s.meta_bytes + s.codebook_bytes + s.weight_table_bytes + s.weight_stream_bytes
                      + s.gap_table_bytes + s.gap_stream_bytes)
            assert s.weight_stream_bytes == (s.weight_stream_bits + 7) // 8
        else:
            parts += s.meta_bytes + s.data_bytes
    assert parts == sizes.total_bytes == path.stat().st_size
    report = json.loads(json.dumps(sizes.as_dict()))
    assert report["total_bytes"] == path.stat().st_size
    assert sum(row["total_bytes"] for row in report["sections"]) + 34 == path.stat().st_size
    conv = report["sections"][0]
    assert conv["kind"] == "sparse" and conv["weight_bits"] == 3 and conv["index_bits"] == 2  # K = 6, +filler
    assert conv["weight_bits_huffman"] == conv["weight_stream_bits"] / conv["entries"]


def put(path: Path, data: bytes) -> None:
    """Write a new file: truncating an existing one can flush to disk (ext4's auto_da_alloc), 100x slower."""
    path.unlink(missing_ok=True)
    path.write_bytes(data)


def reseal(blob: bytes | bytearray) -> bytes:
    """The file with its declared size and CRC recomputed: damage the checksum cannot see (a forgery)."""
    blob = bytearray(blob)
    blob[22:30] = struct.pack("<Q", len(blob))
    blob[-4:] = struct.pack("<I", zlib.crc32(bytes(blob[:-4])))
    return bytes(blob)


def test_every_truncation_and_every_bit_flip_is_refused(tmp_path: Path):
    path = tmp_path / "c.bin"
    _, tensors = mixed_file(path)
    blob, expected = path.read_bytes(), expected_of(tensors)
    assert all(same_bits(t, tensors[name]) for name, t in decode(path, HASH, expected).items())
    damaged = tmp_path / "damaged.bin"
    for length in range(len(blob)):
        put(damaged, blob[:length])
        with pytest.raises(UserError, match=f"^{re.escape(str(damaged))}: "):
            decode(damaged, HASH, expected)
    for bit in range(8 * len(blob)):
        flipped = bytearray(blob)
        flipped[bit // 8] ^= 1 << bit % 8
        put(damaged, flipped)
        with pytest.raises(UserError, match=f"^{re.escape(str(damaged))}: "):
            decode(damaged, HASH, expected)
    put(damaged, blob + b"\0")
    with pytest.raises(UserError, match="the file has"):
        decode(damaged, HASH, expected)


def test_forged_files_give_only_user_errors(tmp_path: Path):
    """Random bytes changed with the checksum recomputed: refused with a UserError, or (when the change is
    a value) decoded to the model's names, shapes and dtypes; never another exception."""
    path = tmp_path / "c.bin"
    _, tensors = mixed_file(path)
    blob, expected = path.read_bytes(), expected_of(tensors)
    rng = np.random.default_rng(3)
    refused = 0
    for _ in range(400):
        forged = bytearray(blob)
        for at in rng.integers(HEADER.size, len(blob) - 4, rng.integers(1, 4)):
            forged[at] = rng.integers(256)
        put(path, reseal(forged))
        try:
            got = decode(path, HASH, expected)
        except UserError as error:
            assert str(error).startswith(f"{path}: ") and "\n" not in str(error)
            refused += 1
            continue
        assert {name: (tuple(t.shape), t.dtype) for name, t in got.items()} == expected
    assert refused > 200


def one_layer_file(path: Path, dense: bool = False) -> bytes:
    """Layer "w", shape (5, 8), fixed point of 2 bits (K = 4), N = 3; its fields' offsets are below.
    dense: all 40 weights kept, all symbol 0, so both streams have one symbol and 0 bits."""
    positions, symbols = (np.arange(40), np.zeros(40, np.int64)) if dense else ([1, 4, 30, 39], [0, 1, 3, 1])
    encode(path, HASH, [SparseLayer("w", (5, 8), np.array(positions), np.array(symbols),
                                    Codebook("fixed", total_bits=2, frac_bits=1), 3)])
    return path.read_bytes()


# Offsets in one_layer_file: header 30 bytes; kind 30, name length 31-32, name 33, rank 34,
# dims 35-42, N 43, codebook 44-46, entries 47-54, weight table length 55-58, weight table from 59.
DIMS, ENTRIES, WEIGHT_TABLE = 35, 47, 55
EXPECTED = {"w": ((5, 8), torch.float32)}


def refused(path: Path, forged: bytes, match: str, expected: dict = EXPECTED) -> None:
    put(path, reseal(forged))
    with pytest.raises(UserError, match=match):
        decode(path, HASH, expected)


def patch(blob: bytes, at: int, value: bytes) -> bytes:
    return blob[:at] + value + blob[at + len(value):]


def test_huge_declarations_are_refused_without_allocating(tmp_path: Path):
    path = tmp_path / "c.bin"
    blob = one_layer_file(path)
    assert decode(path, HASH, EXPECTED)["w"].count_nonzero() == 4
    tracemalloc.start()
    start = time.perf_counter()
    refused(path, patch(blob, ENTRIES, struct.pack("<Q", 2**40)), "1099511627776 entries")
    zero_bit_streams = one_layer_file(path, dense=True)  # only the entry count bounds what they decode to
    refused(path, patch(zero_bit_streams, ENTRIES, struct.pack("<Q", 2**40)), "more than the 40 weights")
    refused(path, patch(blob, DIMS, struct.pack("<II", 2**31, 2**31)), "in the model")
    refused(path, patch(blob, WEIGHT_TABLE, struct.pack("<I", 2**32 - 1)), "truncated: weight code table")
    refused(path, patch(blob, HEADER.size - 12, struct.pack("<I", 2**32 - 1)), "holds 4294967295 tensors")
    kmeans = patch(blob, 44, struct.pack("<BI", 0, 2**32 - 1))  # k-means, K = 2**32 - 1
    refused(path, kmeans, "codebook of 4294967295 values")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2**20 and time.perf_counter() - start < 2


def test_inconsistent_sections_are_refused(tmp_path: Path):
    path = tmp_path / "c.bin"
    blob = one_layer_file(path)
    assert struct.unpack_from("<Q", blob, ENTRIES)[0] == 8  # 4 kept weights, 4 fillers (gaps 25 and 8)
    refused(path, patch(blob, ENTRIES, struct.pack("<Q", 9)), "does not decode to 9 entries")
    refused(path, patch(blob, ENTRIES, struct.pack("<Q", 7)), "7 entries use")
    table_end = WEIGHT_TABLE + 4 + struct.unpack_from("<I", blob, WEIGHT_TABLE)[0]
    refused(path, patch(blob, table_end - 1, bytes([200])), "out of range")  # a symbol past the codebook
    refused(path, patch(blob, DIMS, struct.pack("<II", 5, 7)), "past the 35 elements",  # positions up to 39
            {"w": ((5, 7), torch.float32)})
    refused(path, patch(blob, 4, struct.pack("<H", 2)), "format version 2")
    refused(path, patch(blob, 0, b"PKZI"), "not a prunelab compressed file")
    refused(path, blob[:-4] + b"\0" + blob[-4:], "bytes after the last section")


def test_another_config_or_model_is_refused(tmp_path: Path):
    path = tmp_path / "c.bin"
    _, tensors = mixed_file(path)
    expected = expected_of(tensors)
    with pytest.raises(UserError, match="made for config 0123456789ab, not this one"):
        decode(path, "ffffffffffff", expected)
    for name, change in [("conv.weight", ((4, 2, 3, 4), torch.float32)), ("conv.bias", ((4,), torch.float16)),
                         ("mask", ((11,), torch.float32))]:
        with pytest.raises(UserError, match="another model"):
            decode(path, HASH, {**expected, name: change})
    with pytest.raises(UserError, match="another model"):
        decode(path, HASH, {k: v for k, v in expected.items() if k != "mask"})
    with pytest.raises(UserError, match="another model"):
        decode(path, HASH, {**expected, "extra.weight": ((3,), torch.float32)})
    renamed = {("fc2.weight" if k == "fc.weight" else k): v for k, v in expected.items()}
    with pytest.raises(UserError, match="not in the model"):
        decode(path, HASH, renamed)
    with pytest.raises(UserError, match="missing.bin: not found"):
        decode(tmp_path / "missing.bin", HASH, expected)


def test_a_failed_encode_leaves_no_file(tmp_path: Path):
    path = tmp_path / "c.bin"
    good = SparseLayer("a", (4,), np.array([0, 2]), np.array([0, 1]), Codebook("fixed", total_bits=2), 2)
    bad = SparseLayer("b", (4,), np.array([2, 0]), np.array([0, 1]), Codebook("fixed", total_bits=2), 2)
    with pytest.raises(ValueError, match="increase strictly"):
        encode(path, HASH, [good, bad])
    assert list(tmp_path.iterdir()) == []
    encode(path, HASH, [good])
    before = path.read_bytes()
    for section in [dataclasses.replace(good, symbols=np.array([0, 4])), dataclasses.replace(good, index_bits=0),
                    RawTensor("half", torch.zeros(3, dtype=torch.float16))]:
        with pytest.raises(ValueError):
            encode(path, HASH, [section])
    with pytest.raises(ValueError, match="12 ASCII"):
        encode(path, "short", [good])
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["c.bin"]
