"""The published numbers the compression reports stand beside.

Han, Mao, Dally 2016, "Deep Compression" (ICLR, arXiv:1510.00149v5), Tables 2 and 3: per layer the
weights kept after pruning (%), weight bits after quantization (P+Q) and after Huffman coding
(P+Q+H, average bits per stored weight), relative-index bits (P+Q, P+Q+H) and the compress rate
(compressed size / fp32 size, %). Their ip1..ip3 are our fc1..fc3.

A MASE student pipeline (group 3): VGG7 on CIFAR-10, 20% weight and 10% activation sparsity, 8-bit
fixed point with 4 fractional bits, 10 epochs of fine-tuning; sizes computed from tensors, not a file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerRow:
    weights: str  # the paper's count, as printed ("235K")
    kept: float  # % of weights kept by pruning
    weight_bits: float  # P+Q
    weight_bits_huffman: float  # P+Q+H
    index_bits: float
    index_bits_huffman: float
    rate: float  # compressed / fp32 (%), P+Q
    rate_huffman: float  # P+Q+H


@dataclass(frozen=True)
class DeepCompressionTable:
    source: str
    layers: dict[str, LayerRow]  # our layer name -> the paper's row
    total: LayerRow
    error_dense: float  # top-1 error (%)
    error_compressed: float
    size: str  # "1070 KB -> 27 KB"


HAN_2016 = "Han et al. 2016 (Deep Compression)"
DEEP_COMPRESSION = {
    "lenet300_100": DeepCompressionTable(
        source=f"{HAN_2016}, Table 2",
        layers={
            "fc1": LayerRow("235K", 8, 6, 4.4, 5, 3.7, 3.1, 2.32),
            "fc2": LayerRow("30K", 9, 6, 4.4, 5, 4.3, 3.8, 3.04),
            "fc3": LayerRow("1K", 26, 6, 4.3, 5, 3.2, 15.7, 12.70),
        },
        total=LayerRow("266K", 8, 6, 5.1, 5, 3.7, 3.1, 2.49),
        error_dense=1.64, error_compressed=1.58, size="1070 KB -> 27 KB (40x)",
    ),
    "lenet5_caffe": DeepCompressionTable(
        source=f"{HAN_2016}, Table 3",
        layers={
            "conv1": LayerRow("0.5K", 66, 8, 7.2, 5, 1.5, 78.5, 67.45),
            "conv2": LayerRow("25K", 12, 8, 7.2, 5, 3.9, 6.0, 5.28),
            "fc1": LayerRow("400K", 8, 5, 4.5, 5, 4.5, 2.7, 2.45),
            "fc2": LayerRow("5K", 19, 5, 5.2, 5, 3.7, 6.9, 6.13),
        },
        total=LayerRow("431K", 8, 5.3, 4.1, 5, 4.4, 3.05, 2.55),
        error_dense=0.80, error_compressed=0.74, size="1720 KB -> 44 KB (39x)",
    ),
}


@dataclass(frozen=True)
class ThreeSteps:
    """Model size after each pass as a fraction of the original (%), and top-1 before and after."""

    source: str
    pruned: float
    quantized: float
    huffman: float
    accuracy_dense: float
    accuracy_compressed: float


MASE_GROUP3 = ThreeSteps(source="MASE group 3: VGG7 on CIFAR-10 (sizes computed, not a file)",
                         pruned=80.0, quantized=20.0, huffman=7.34, accuracy_dense=93.32, accuracy_compressed=93.34)
