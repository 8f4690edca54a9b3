"""Published numbers the common report tables put beside ours (docs/references.md has the sources)."""

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
