"""The LeNets of Han et al. 2015 and the neural-pruning seed (28x28 inputs by default)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .registry import MODELS


@MODELS.register("lenet300_100")
class LeNet300100(nn.Module):
    """784-300-100-10 MLP: 266,610 parameters on 28x28x1 inputs."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        self.fc1 = nn.Linear(in_channels * image_size * image_size, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


@MODELS.register("lenet5")
class LeNet5(nn.Module):
    """Classic LeNet-5: conv 6 and 16 (5x5), fc 120-84-10; 61,706 parameters.

    conv1 pads by 2 on 28x28 inputs so the feature maps match the 32x32 original
    (28 -> 28 -> 14 -> 10 -> 5, giving 16 x 5 x 5 = 400 features).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        padding = 2 if image_size == 28 else 0
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=padding)
        self.conv2 = nn.Conv2d(6, 16, 5)
        side = ((image_size + 2 * padding - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(16 * side * side, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        return self.fc3(F.relu(self.fc2(x)))


@MODELS.register("lenet5_caffe")
class LeNet5Caffe(nn.Module):
    """Han et al.'s LeNet-5 (Caffe): conv 20 and 50 (5x5, no padding), fc 800-500-10; 431,080 parameters."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, image_size: int = 28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        side = ((image_size - 4) // 2 - 4) // 2
        self.fc1 = nn.Linear(50 * side * side, 500)
        self.fc2 = nn.Linear(500, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Caffe's prototxt has no ReLU after the convolutions; DeepHoyer's PyTorch port adds
        # them (same parameters and MACs), and so do we: it trains faster on Fashion-MNIST.
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))
