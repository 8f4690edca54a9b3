"""Published numbers our reports put beside ours (from shared/REFERENCES.md)."""

from __future__ import annotations

# Han et al. 2015, "Learning both Weights and Connections", MNIST (Caffe).
# kept: % of weights kept per layer; errors are top-1 error in %.
HAN_2015 = {
    "lenet300_100": {
        "kept": {"fc1": 8, "fc2": 9, "fc3": 26},
        "total_kept": 8,
        "flops_kept": 8,
        "error_dense": 1.64,
        "error_pruned": 1.59,
        "params_dense": "267K",
        "params_pruned": "22K",
        "compression": 12,
    },
    "lenet5_caffe": {
        "kept": {"conv1": 66, "conv2": 12, "fc1": 8, "fc2": 19},
        "total_kept": 8,
        "flops_kept": 16,
        "error_dense": 0.80,
        "error_pruned": 0.77,
        "params_dense": "431K",
        "params_pruned": "36K",
        "compression": 12,
    },
}

# The neural-pruning seed (classic LeNet-5 6-16-120-84 and LeNet-300-100, MNIST).
NEURAL_PRUNING_SEED = {
    "lenet5": {"accuracy_dense": 97.00, "accuracy_pruned": 96.40, "compression": 7.50},
    "lenet300_100": {"accuracy_dense": 95.62, "accuracy_pruned": 94.76, "compression": 8.21},
}

# Li et al. 2017, "Pruning Filters for Efficient ConvNets", CIFAR-10 (shared/REFERENCES.md).
# Top-1 error in %; FLOPs and parameters as printed in the paper; reductions in %.
# VGG-16-A removes 50% of the filters of conv1 and conv8-13; the B ResNets skip sensitive layers.
LI_2017 = {
    "vgg16_bn": {"model": "VGG-16 -> VGG-16-A", "error_dense": 6.75, "error_pruned": 6.60,
                 "flops_dense": 3.13e8, "flops_pruned": 2.06e8, "flops_reduction": 34.2,
                 "params_dense": 1.5e7, "params_pruned": 5.4e6, "params_reduction": 64.0},
    "resnet56": {"model": "ResNet-56 -> ResNet-56-B", "error_dense": 6.96, "error_pruned": 6.94,
                 "flops_dense": 1.25e8, "flops_pruned": None, "flops_reduction": 27.6,
                 "params_dense": 8.5e5, "params_pruned": None, "params_reduction": 13.7},
    "resnet110": {"model": "ResNet-110 -> ResNet-110-B", "error_dense": 6.47, "error_pruned": 6.70,
                  "flops_dense": 2.53e8, "flops_pruned": None, "flops_reduction": 38.6,
                  "params_dense": 1.72e6, "params_pruned": None, "params_reduction": 32.4},
}
