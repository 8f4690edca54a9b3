"""A network of your own, outside prunelab: docs/your-model.md runs it through `reproduce`
(docs/examples/my_cnn.toml) and through the Python API (prunelab.api).

prunelab calls the factory with keyword arguments in_channels, num_classes and image_size, taken
from the data set (MNIST: 1, 10 and 28); any function or class that takes them and returns an
nn.Module works.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class SmallCNN(nn.Module):
    """Two blocks of 3x3 conv, BatchNorm, ReLU and 2x2 max-pooling, then one linear classifier."""

    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width * (image_size // 4) ** 2, num_classes)  # two poolings: size / 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(torch.flatten(x, 1))


def small_cnn(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    return SmallCNN(in_channels, num_classes, image_size)
