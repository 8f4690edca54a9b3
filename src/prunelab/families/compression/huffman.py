"""Canonical Huffman coding of a symbol stream: Deep Compression's third stage (Han et al. 2016, sec. 4).

bitarray builds and decodes the code (canonical_huffman / canonical_decode); this module adds the
compact stored form of the code table and the checks a decoder of untrusted bytes needs. A
canonical code is fixed by its code lengths alone, so the table stores, per code length, how
many symbols have it, then the symbols in canonical order (docs/compressed-format.md):

    varint m                      distinct symbols in the stream
    m == 0: nothing               (an empty stream)
    m == 1: the symbol            (the stream is 0 bits: every entry is that symbol)
    m >= 2: u8 L, L varints count[1..L] (symbols whose code is 1..L bits), m symbols

Symbols are little-endian, 1 to 3 bytes each: as many as the alphabet's largest symbol needs.
The stream is the codes back to back, most significant bit of each byte first.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from itertools import islice

import numpy as np
from bitarray import bitarray
from bitarray.util import canonical_decode, canonical_huffman

MAX_CODE_BITS = 31  # canonical_decode takes counts for code lengths 0..31 at most


class FormatError(ValueError):
    """Bytes that do not decode as declared; the container names the file and the section."""


@dataclass(frozen=True)
class Coded:
    """One coded stream: its table, its bits packed into bytes (zero padded) and its exact bit count."""

    table: bytes
    payload: bytes
    bits: int


def entropy_bits(symbols: np.ndarray) -> float:
    """Shannon's bound for coding these symbols one at a time: n * H(empirical distribution), in bits."""
    counts = np.unique(np.asarray(symbols), return_counts=True)[1].astype(np.float64)
    return float(-(counts * np.log2(counts / counts.sum())).sum())


def symbol_bytes(alphabet: int) -> int:
    """Bytes per symbol in a table: enough for the largest symbol, alphabet - 1."""
    return max(1, ((alphabet - 1).bit_length() + 7) // 8)


def varint(value: int) -> bytes:
    """Unsigned LEB128: 7 bits per byte, low bits first, high bit set on all but the last byte."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def canonical_code(freq: dict[int, int]) -> tuple[dict[int, bitarray], list[int], list[int]]:
    """bitarray's canonical Huffman code for >= 2 symbols, its longest code at most MAX_CODE_BITS.

    Only a very skewed stream (Fibonacci-like counts, millions of symbols) needs more; then the
    counts are halved (each kept >= 1) until it fits: slightly suboptimal, always decodable.
    """
    while True:
        code, count, order = canonical_huffman(freq)
        if len(count) - 1 <= MAX_CODE_BITS:
            return code, count, order
        freq = {symbol: (n + 1) // 2 for symbol, n in freq.items()}


def encode(symbols: np.ndarray, alphabet: int) -> Coded:
    """Code a stream of ints in [0, alphabet) with its own canonical Huffman code."""
    values, counts = np.unique(np.asarray(symbols, dtype=np.int64), return_counts=True)
    width = symbol_bytes(alphabet)
    table = bytearray(varint(len(values)))
    if len(values) <= 1:  # 0 or 1 distinct symbols: the table says it all, the stream is 0 bits
        table += b"".join(int(v).to_bytes(width, "little") for v in values)
        return Coded(bytes(table), b"", 0)
    code, count, order = canonical_code(dict(zip(values.tolist(), counts.tolist())))
    table.append(len(count) - 1)
    table += b"".join(varint(n) for n in count[1:])
    table += b"".join(symbol.to_bytes(width, "little") for symbol in order)
    stream = bitarray(endian="big")
    stream.encode(code, np.asarray(symbols, dtype=np.int64).tolist())
    return Coded(bytes(table), stream.tobytes(), len(stream))


class Reader:
    """Reads untrusted bytes front to back: a field past the end is a FormatError raised before
    anything is allocated for it. The container reads its sections with it too."""

    def __init__(self, data: bytes | memoryview):
        self.data, self.at = memoryview(data), 0

    @property
    def left(self) -> int:
        return len(self.data) - self.at

    def take(self, n: int, what: str) -> memoryview:
        if n > self.left:
            raise FormatError(f"truncated: {what} needs {n} bytes, {self.left} remain")
        self.at += n
        return self.data[self.at - n:self.at]

    def unpack(self, fmt: str, what: str) -> tuple:
        layout = struct.Struct("<" + fmt)
        return layout.unpack(self.take(layout.size, what))

    def varint(self, what: str) -> int:
        value = 0
        for shift in range(0, 64, 7):  # at most 10 bytes: no count here reaches 2**64
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
        raise FormatError(f"{what} longer than 64 bits")


def _read_table(table: bytes, alphabet: int, what: str) -> tuple[list[int], list[int]]:
    """(count, symbols) of a stored table, checked: distinct symbols below the alphabet, a complete code."""
    reader, what = Reader(table), f"{what} code table"
    distinct = reader.varint(what)
    if distinct > alphabet:
        raise FormatError(f"{what} lists {distinct} symbols, the alphabet has {alphabet}")
    count = [0]
    if distinct >= 2:
        (longest,) = reader.unpack("B", what)
        if not 1 <= longest <= MAX_CODE_BITS:
            raise FormatError(f"{what} has codes of {longest} bits (1 to {MAX_CODE_BITS} allowed)")
        count += [reader.varint(what) for _ in range(longest)]
        # Kraft equality: a Huffman code of >= 2 symbols leaves no bit pattern unused.
        if sum(count) != distinct or sum(n << (longest - bits) for bits, n in enumerate(count)) != 1 << longest:
            raise FormatError(f"{what} is not a complete prefix code")
    width = symbol_bytes(alphabet)
    symbols = [int.from_bytes(reader.take(width, what), "little") for _ in range(distinct)]
    if reader.left:
        raise FormatError(f"{what} has {reader.left} bytes left over")
    if any(s >= alphabet for s in symbols):
        raise FormatError(f"{what} has symbol {max(symbols)}, out of range [0, {alphabet})")
    if len(set(symbols)) != distinct:
        raise FormatError(f"{what} lists a symbol twice")
    return count, symbols


def decode(table: bytes, payload: bytes, bits: int, entries: int, alphabet: int, what: str) -> np.ndarray:
    """The `entries` symbols (int64) a table and stream code; every bit must be used, padding zero.

    `what` names the stream in errors. The caller checks len(payload) == ceil(bits / 8); the
    output is allocated only once entries is known to fit in the stream (>= 1 bit per symbol).
    """
    count, symbols = _read_table(table, alphabet, what)
    if len(symbols) <= 1:
        if bits or (entries and not symbols):
            raise FormatError(f"{what} stream: {bits} bits for {entries} entries of {len(symbols)} distinct symbols")
        return np.full(entries, symbols[0] if symbols else 0, dtype=np.int64)
    if entries > bits:
        raise FormatError(f"{what} stream: {entries} entries cannot fit in {bits} bits")
    stream = bitarray(endian="big")
    stream.frombytes(bytes(payload))
    if stream[bits:].any():
        raise FormatError(f"{what} stream: nonzero padding bits")
    del stream[bits:]
    try:
        out = np.fromiter(islice(canonical_decode(stream, count, symbols), entries), np.int64, entries)
    except ValueError:  # bitarray: the bits run out mid-code; numpy: fewer symbols than entries
        raise FormatError(f"{what} stream does not decode to {entries} entries") from None
    lengths = np.zeros(alphabet, dtype=np.int64)  # code length (bits) of each symbol
    lengths[symbols] = np.repeat(np.arange(len(count)), count)
    used = int(lengths[out].sum())
    if used != bits:
        raise FormatError(f"{what} stream: {entries} entries use {used} of its {bits} bits")
    return out


def payload_bytes(bits: int) -> int:
    """Bytes that hold a stream of `bits` bits."""
    return (bits + 7) // 8  # integer arithmetic: exact for any declared count
