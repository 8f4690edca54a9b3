"""compressed.bin: Deep Compression's storage (Han et al. 2016) as a real file, decoded bit for bit.

Format version 1, byte by byte in docs/compressed-format.md; integers little-endian.
header: "PLDC", u16 version, 12-char ASCII config hash, u32 section count, u64 file bytes.
sections: sparse (a quantized weight: its codebook and relative indices, relative.py; its weight
symbols and gaps, each stream canonical-Huffman coded with its own table, huffman.py) or raw
(any other tensor: float32, int64, or bool packed 8 to a byte).
trailer: u32 CRC-32 of all bytes before it. CRC-32 rather than sha256: it detects every
single-bit flip (and every burst of <= 32 bits) by construction, not with high probability, in
4 bytes instead of 32; the file size in the header catches every truncation exactly. No checksum
stops someone who recomputes it, so the decoder checks each declared size against the bytes left
and against the model's tensors before allocating: it never allocates more than the model needs.
"""

from __future__ import annotations

import dataclasses
import math
import os
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ...atomic import atomic_path
from ...errors import UserError
from . import huffman, relative
from .huffman import FormatError, Reader
from .relative import Codebook

MAGIC, VERSION = b"PLDC", 1
HEADER = struct.Struct("<4sH12sIQ")  # magic, version, config hash, section count, file bytes: 30 bytes
TRAILER = struct.Struct("<I")  # CRC-32 (zlib) of the header and every section: 4 bytes
RAW, SPARSE = 0, 1  # section kinds
DTYPES = {0: torch.float32, 1: torch.int64, 2: torch.bool}  # raw dtype codes; bool packed 8 to a byte
LITTLE = {torch.float32: np.dtype("<f4"), torch.int64: np.dtype("<i8")}  # the raw bytes of the others
MAX_INDEX_BITS = 16  # gap symbols fit 2 table bytes
Expected = Mapping[str, tuple[tuple[int, ...], torch.dtype]]  # state_dict name -> (shape, dtype)


@dataclass
class SparseLayer:
    """A quantized weight: the flat row-major positions of its kept weights (int64, strictly increasing),
    their codebook symbols (int64 in [0, K)), the codebook, and N, the bits per relative index (1..16)."""

    name: str
    shape: tuple[int, ...]
    positions: np.ndarray
    symbols: np.ndarray
    codebook: Codebook
    index_bits: int


@dataclass
class RawTensor:
    """Any other state_dict tensor, stored as its bytes: float32, int64 or bool."""

    name: str
    tensor: torch.Tensor


@dataclass(frozen=True)
class LayerSizes:
    """A sparse section's bytes by part, and its widths for Han's table: P+Q bits per entry before
    Huffman coding (weights: ceil(log2(K + 1)), the filler symbol counted; indices: N) and after
    (P+Q+H: stream bits / entries). meta_bytes: kind, name, shape, N, entry count, the length fields."""

    name: str
    meta_bytes: int
    codebook_bytes: int
    weight_table_bytes: int
    weight_stream_bytes: int
    gap_table_bytes: int
    gap_stream_bytes: int
    entries: int  # kept weights + fillers: the length of both streams
    fillers: int
    weight_bits: int
    index_bits: int
    weight_stream_bits: int  # without the byte padding
    gap_stream_bits: int
    weight_entropy_bits: float  # Shannon's bound for each stream (huffman.entropy_bits)
    gap_entropy_bits: float

    @property
    def total_bytes(self) -> int:
        return (self.meta_bytes + self.codebook_bytes + self.weight_table_bytes + self.weight_stream_bytes
                + self.gap_table_bytes + self.gap_stream_bytes)

    def huffman_bits(self) -> dict[str, float]:
        """P+Q+H: weight and index bits per entry after Huffman coding (0.0 for a layer with no entries)."""
        per = max(self.entries, 1)
        return {"weight_bits_huffman": self.weight_stream_bits / per, "index_bits_huffman": self.gap_stream_bits / per}


@dataclass(frozen=True)
class RawSizes:
    """A raw section's bytes: its head and its data."""

    name: str
    meta_bytes: int  # kind, name, shape, dtype code, data length
    data_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.meta_bytes + self.data_bytes


@dataclass(frozen=True)
class FileSizes:
    """Every byte of the file by part; total_bytes is the file's size on disk."""

    header_bytes: int
    sections: tuple[LayerSizes | RawSizes, ...]
    trailer_bytes: int

    @property
    def total_bytes(self) -> int:
        return self.header_bytes + sum(s.total_bytes for s in self.sections) + self.trailer_bytes

    def as_dict(self) -> dict:
        """JSON-ready: the parts, and per section its kind, fields, total bytes (and sparse: P+Q+H)."""
        sections = [{"kind": "sparse" if isinstance(s, LayerSizes) else "raw", **dataclasses.asdict(s),
                     "total_bytes": s.total_bytes, **(s.huffman_bits() if isinstance(s, LayerSizes) else {})}
                    for s in self.sections]
        return {"header_bytes": self.header_bytes, "trailer_bytes": self.trailer_bytes,
                "total_bytes": self.total_bytes, "sections": sections}


def _head(kind: int, name: str, shape: Sequence[int]) -> bytes:
    """Section start: u8 kind, u16 name length, UTF-8 name, u8 ndim, u32 per dimension."""
    raw_name = name.encode()
    if len(raw_name) > 0xFFFF or len(shape) > 0xFF or any(not 0 <= d < 1 << 32 for d in shape):
        raise ValueError(f"{name!r}: name or shape {tuple(shape)} too large for the format")
    return struct.pack(f"<BH{len(raw_name)}sB{len(shape)}I", kind, len(raw_name), raw_name, len(shape), *shape)


def _encode_sparse(layer: SparseLayer) -> tuple[bytes, LayerSizes]:
    codebook, k = layer.codebook.encoded()
    positions = np.asarray(layer.positions, dtype=np.int64)
    symbols = np.asarray(layer.symbols, dtype=np.int64)
    numel, n = math.prod(layer.shape), layer.index_bits
    if not 1 <= n <= MAX_INDEX_BITS or positions.ndim != 1 or positions.shape != symbols.shape:
        raise ValueError(f"{layer.name}: index_bits {n} (1..{MAX_INDEX_BITS}) or positions/symbols not matching 1-D")
    if len(positions) and (positions[0] < 0 or positions[-1] >= numel or np.any(np.diff(positions) <= 0)):
        raise ValueError(f"{layer.name}: positions must increase strictly within [0, {numel})")
    if len(symbols) and (symbols.min() < 0 or symbols.max() >= k):
        raise ValueError(f"{layer.name}: symbols must lie in [0, {k}) (the codebook's size)")
    gaps, stream = relative.to_relative(positions, symbols, n, filler=k)
    weights, gap_code = huffman.encode(stream, k + 1), huffman.encode(gaps, 1 << n)
    head = _head(SPARSE, layer.name, layer.shape) + struct.pack("<B", n)
    parts = [head, codebook, struct.pack("<Q", len(stream))]
    for coded in (weights, gap_code):
        parts += [struct.pack("<I", len(coded.table)), coded.table, struct.pack("<Q", coded.bits), coded.payload]
    sizes = LayerSizes(
        layer.name, len(head) + 8 + 2 * (4 + 8), len(codebook), len(weights.table), len(weights.payload),
        len(gap_code.table), len(gap_code.payload), entries=len(stream), fillers=len(stream) - len(positions),
        weight_bits=k.bit_length(), index_bits=n, weight_stream_bits=weights.bits, gap_stream_bits=gap_code.bits,
        weight_entropy_bits=huffman.entropy_bits(stream), gap_entropy_bits=huffman.entropy_bits(gaps))
    return b"".join(parts), sizes


def _encode_raw(raw: RawTensor) -> tuple[bytes, RawSizes]:
    tensor = raw.tensor.detach().cpu().contiguous()
    code = next((c for c, dtype in DTYPES.items() if dtype == tensor.dtype), None)
    if code is None:
        raise ValueError(f"{raw.name}: dtype {tensor.dtype} cannot be stored (float32, int64 or bool)")
    flat = tensor.numpy().reshape(-1)
    data = (np.packbits(flat, bitorder="little") if code == 2 else flat.astype(LITTLE[tensor.dtype])).tobytes()
    head = _head(RAW, raw.name, tuple(tensor.shape)) + struct.pack("<BQ", code, len(data))
    return head + data, RawSizes(raw.name, len(head), len(data))


def encode(path: Path, config_hash: str, sections: Sequence[SparseLayer | RawTensor]) -> FileSizes:
    """Write compressed.bin atomically (never a half file); ValueError for arguments the format cannot hold."""
    if len(config_hash) != 12 or not config_hash.isascii():
        raise ValueError(f"config hash must be 12 ASCII characters, not {config_hash!r}")
    if len({s.name for s in sections}) != len(sections):
        raise ValueError("section names must be distinct")
    encoded = [_encode_sparse(s) if isinstance(s, SparseLayer) else _encode_raw(s) for s in sections]
    body = b"".join(data for data, _ in encoded)
    total = HEADER.size + len(body) + TRAILER.size
    blob = HEADER.pack(MAGIC, VERSION, config_hash.encode("ascii"), len(sections), total) + body
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(blob + TRAILER.pack(zlib.crc32(blob)))
    return FileSizes(HEADER.size, tuple(sizes for _, sizes in encoded), TRAILER.size)


def _read_envelope(path: Path, config_hash: str | None) -> tuple[memoryview, int]:
    """(the sections' bytes, their count) once magic, version, size, checksum and config hash are right."""
    try:
        with path.open("rb") as file:
            size = os.fstat(file.fileno()).st_size
            head = file.read(HEADER.size)
            if not MAGIC.startswith(head[:len(MAGIC)]):
                raise UserError(f"{path}: not a prunelab compressed file (no {MAGIC.decode()} magic)")
            if size < HEADER.size + TRAILER.size:
                raise UserError(f"{path}: truncated ({size} bytes; header and trailer take {HEADER.size + TRAILER.size})")
            _, version, file_hash, count, declared = HEADER.unpack(head)
            if version != VERSION:
                raise UserError(f"{path}: compressed format version {version}; this prunelab reads {VERSION}")
            if declared != size:
                raise UserError(f"{path}: truncated or damaged (the header says {declared} bytes, the file has {size})")
            data = head + file.read(size - HEADER.size + 1)  # one byte more: catches a file growing meanwhile
    except FileNotFoundError:
        raise UserError(f"{path}: not found") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror or error})") from None
    if len(data) != size or zlib.crc32(data[:-TRAILER.size]) != TRAILER.unpack(data[-TRAILER.size:])[0]:
        raise UserError(f"{path}: damaged (CRC-32 mismatch)")
    if config_hash is not None and file_hash != config_hash.encode("ascii", "replace"):
        raise UserError(f"{path}: made for config {file_hash.decode('ascii', 'replace')}, "
                        f"not this one ({config_hash}); rerun compress")
    return memoryview(data)[HEADER.size:-TRAILER.size], count


def _decode_sparse(reader: Reader, shape: tuple[int, ...]) -> torch.Tensor:
    numel = math.prod(shape)
    (n,) = reader.unpack("B", "index bits")
    if not 1 <= n <= MAX_INDEX_BITS:
        raise FormatError(f"index width of {n} bits (1 to {MAX_INDEX_BITS} allowed)")
    levels = relative.read_codebook(reader)
    (entries,) = reader.unpack("Q", "entry count")
    if entries > numel:  # every entry, filler or kept, takes a position of its own
        raise FormatError(f"declares {entries} entries, more than the {numel} weights of its shape")
    streams = []
    for what, alphabet in (("weight", len(levels) + 1), ("gap", 1 << n)):
        (table_bytes,) = reader.unpack("I", f"{what} code table length")
        table = bytes(reader.take(table_bytes, f"{what} code table"))
        (bits,) = reader.unpack("Q", f"{what} stream length")
        payload = reader.take(huffman.payload_bytes(bits), f"{what} stream")
        streams.append(huffman.decode(table, payload, bits, entries, alphabet, what))
    positions, kept = relative.from_relative(streams[1], streams[0], n, len(levels), numel)
    dense = np.zeros(numel, dtype=np.float32)
    dense[positions] = levels[kept]
    return torch.from_numpy(dense).reshape(shape)


def _decode_raw(reader: Reader, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    numel = math.prod(shape)
    want = (numel + 7) // 8 if dtype == torch.bool else numel * LITTLE[dtype].itemsize
    (size,) = reader.unpack("Q", "data length")
    if size != want:
        raise FormatError(f"declares {size} data bytes; its dtype and shape take {want}")
    data = np.frombuffer(reader.take(size, "data"), dtype=np.uint8)
    if dtype == torch.bool:
        bits = np.unpackbits(data, bitorder="little")
        if bits[numel:].any():
            raise FormatError("nonzero padding bits")
        return torch.from_numpy(bits[:numel].astype(bool)).reshape(shape)
    return torch.from_numpy(data.view(LITTLE[dtype]).astype(LITTLE[dtype].newbyteorder("="))).reshape(shape)


def _read_section(reader: Reader, expected: Expected, seen: Mapping) -> tuple[str, torch.Tensor]:
    """One section, its name, shape and dtype checked against the model's before its data is read."""
    kind, name_bytes = reader.unpack("BH", "section head")
    name = str(reader.take(name_bytes, "name"), "utf-8", "replace")
    (ndim,) = reader.unpack("B", f"rank of {name!r}")
    shape = reader.unpack(f"{ndim}I", f"shape of {name!r}")
    if kind not in (RAW, SPARSE):
        raise FormatError(f"{name!r}: unknown section kind {kind}")
    dtype = torch.float32 if kind == SPARSE else DTYPES.get(reader.unpack("B", f"dtype of {name!r}")[0])
    if dtype is None:
        raise FormatError(f"{name!r}: unknown dtype code")
    if name not in expected or name in seen:
        raise FormatError(f"{name!r} is not in the model or comes twice (a file for another model?)")
    want_shape, want_dtype = expected[name]
    if shape != tuple(want_shape) or dtype != want_dtype:
        raise FormatError(f"{name!r} is {dtype} {list(shape)} in the file, {want_dtype} {list(want_shape)} "
                          "in the model (a file for another model?)")
    try:
        return name, _decode_sparse(reader, shape) if kind == SPARSE else _decode_raw(reader, shape, dtype)
    except FormatError as error:
        raise FormatError(f"{name!r}: {error}") from None


def decode(path: Path, config_hash: str | None, expected: Expected) -> dict[str, torch.Tensor]:
    """The model's tensors from compressed.bin (a sparse layer dense float32, exact 0.0 where pruned).

    `expected`: the model's state_dict names -> (shape, dtype); the file must hold exactly those.
    `config_hash`: the header's must equal it (None: a file made with any config, as prunelab.api reads).
    Anything wrong is a one-line UserError naming the file and what is wrong.
    """
    path = Path(path)
    body, count = _read_envelope(path, config_hash)
    if count != len(expected):
        raise UserError(f"{path}: holds {count} tensors, the model has {len(expected)} (a file for another model?)")
    reader, out = Reader(body), {}
    for index in range(count):
        try:
            name, tensor = _read_section(reader, expected, out)
        except FormatError as error:
            raise UserError(f"{path}: section {index}: {error}") from None
        out[name] = tensor
    if reader.left:
        raise UserError(f"{path}: {reader.left} bytes after the last section")
    return out
