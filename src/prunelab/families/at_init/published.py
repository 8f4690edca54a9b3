"""Synaptic-Flow's published accuracy vs compression (Tanaka et al. 2020, Fig. 6), as reference data
for the pruning-at-initialization sweep report (docs/references.md has the same tables).

Transcribed from github.com/ganguli-lab/Synaptic-Flow at commit
9dfa57aa4012c34028ee646d367f18e32f0e3bc7, the files
Results/data/Accuracy_CompRatio/cifar10_lottery_vgg16_bn-{rand,mag,cs,grasp,sf}.npy (cs = SNIP,
sf = SynFlow). Each is a float64 array of shape (3, 13): axis 0 = the 3 seeds (runs), axis 1 = the
compression exponent c = 0, 0.25, ..., 3 (Results/figures.ipynb, Fig. 6: `ratios` '0.0'..'3.0',
x = 10**c, `np.nanmean(acc, axis=0)`); `--compression c` keeps density 10^-c, so compression 10^c,
and c = 0 prunes nothing (dense training). A value is one seed's best test top-1 (%) over its 160
training epochs: the notebook takes `np.max(top1_accuracy)` of the raw logs, which we checked
against the CIFAR-100 VGG16-BN logs (the repository has no raw CIFAR-10 logs). Means over the
seeds and sample standard deviations (n - 1, as the sweep's own tables) rounded to 2 decimals; the
notebook draws a min-max band instead. The files hold no NaN. The same folder has CIFAR-10 /
CIFAR-100 / Tiny ImageNet runs of VGG11-BN, VGG16-BN, ResNet18 and wide ResNet18, but no ResNet20:
only the CIFAR-10 VGG16-BN numbers are transcribed here.
"""

from __future__ import annotations

from ...report.markdown import table
from ...report.references import dataset_label

SYNFLOW_REPO = "github.com/ganguli-lab/Synaptic-Flow"
SYNFLOW_COMMIT = "9dfa57aa4012c34028ee646d367f18e32f0e3bc7"
SYNFLOW_FILES = "Results/data/Accuracy_CompRatio/{dataset}_lottery_{arch}-{{rand,mag,cs,grasp,sf}}.npy"
SYNFLOW_SEEDS = 3
SYNFLOW_EPOCHS = 160
# Synaptic-Flow's file suffix -> prunelab's method name, in the paper's order.
SYNFLOW_METHODS = {"rand": "random", "mag": "magnitude", "cs": "snip", "grasp": "grasp", "sf": "synflow"}
# Column k of every file: compression 10^(k/4), k = 0..12 (1x .. 1000x).
SYNFLOW_COMPRESSIONS = tuple(10 ** (k / 4) for k in range(13))

# Per method: (means, sample stds) over the 3 seeds, top-1 %, one value per compression above.
_CIFAR10_VGG16_BN = {
    "random": ((93.53, 93.36, 93.05, 92.36, 91.15, 89.66, 87.52, 84.08, 79.14, 68.91, 49.05, 13.56, 10.00),
               (0.14, 0.02, 0.18, 0.17, 0.24, 0.10, 0.22, 0.19, 0.41, 2.39, 5.19, 6.17, 0.00)),
    "magnitude": ((93.53, 93.49, 93.33, 93.36, 93.12, 92.36, 91.95, 90.93, 89.80, 81.23, 10.03, 10.00, 10.00),
                  (0.06, 0.28, 0.19, 0.10, 0.11, 0.10, 0.31, 0.07, 0.12, 9.88, 0.05, 0.00, 0.00)),
    "snip": ((93.51, 93.67, 93.28, 92.91, 92.26, 91.79, 91.08, 90.61, 89.15, 87.63, 84.65, 81.76, 76.25),
             (0.19, 0.04, 0.22, 0.30, 0.38, 0.62, 0.50, 0.35, 0.50, 0.86, 0.90, 0.87, 2.85)),
    "grasp": ((93.39, 93.12, 93.09, 92.81, 91.84, 91.15, 90.17, 88.96, 87.49, 85.50, 82.73, 78.65, 70.93),
              (0.21, 0.16, 0.12, 0.16, 0.19, 0.15, 0.56, 0.35, 0.31, 0.54, 0.52, 0.58, 1.84)),
    "synflow": ((93.46, 93.49, 93.54, 93.44, 93.26, 92.74, 92.12, 91.21, 90.08, 88.51, 86.81, 83.80, 80.39),
                (0.14, 0.03, 0.09, 0.05, 0.12, 0.11, 0.22, 0.12, 0.10, 0.13, 0.22, 0.20, 0.09)),
}

# dataset -> arch -> method -> [(compression, mean top-1 %, std), ...] in ascending compression.
SYNFLOW_2020: dict[str, dict[str, dict[str, list[tuple[float, float, float]]]]] = {
    "cifar10": {
        "vgg16_bn": {method: list(zip(SYNFLOW_COMPRESSIONS, means, stds))
                     for method, (means, stds) in _CIFAR10_VGG16_BN.items()},
    },
}
SYNFLOW_ARCH_LABELS = {"vgg16_bn": "VGG16-BN"}


def compression_label(compression: float) -> str:
    """'1x (dense)', '1.78x', '17.8x', '1000x': three significant digits."""
    shown = f"{float(f'{compression:.3g}'):g}x"
    return shown + " (dense)" if compression == 1 else shown


def published_table(dataset: str, arch: str) -> str:
    """Rows = compression, columns = methods, 'mean ± std' of the seeds' top-1 (%)."""
    by_method = SYNFLOW_2020[dataset][arch]
    rows = [[compression_label(compression)] + [f"{by_method[m][i][1]:.2f} ± {by_method[m][i][2]:.2f}"
                                                 for m in by_method]
            for i, (compression, _, _) in enumerate(next(iter(by_method.values())))]
    return table(rows, ["compression"] + list(by_method))


def source_line(dataset: str, arch: str) -> str:
    """Where the numbers come from: the files and the commit."""
    files = SYNFLOW_FILES.format(dataset=dataset, arch=arch)
    return f"{SYNFLOW_REPO} `{files}` at commit `{SYNFLOW_COMMIT}`"


def _published_on(arch: str) -> list[str]:
    return [dataset for dataset, archs in SYNFLOW_2020.items() if arch in archs]


def synflow_section(arch: str, dataset: str) -> list[str]:
    """Synaptic-Flow's published top-1 vs compression for this sweep's architecture, with its data set;
    [] for an architecture it published no numbers for. The published data set is this sweep's when
    there is one, CIFAR-10 otherwise (the sentence then says it is not this sweep's data set)."""
    published = _published_on(arch)
    if not published:
        return []
    source = dataset if dataset in published else published[0]
    on = dataset_label(source)
    name = SYNFLOW_ARCH_LABELS.get(arch, arch)
    where = (f"on {on}, this sweep's data set" if source == dataset
             else f"on {on}, not on this sweep's {dataset_label(dataset)} (compare the shape of the curves, "
                  "not the accuracies)")
    note = (f"Published numbers {where}. Each is one seed's best test top-1 over its {SYNFLOW_EPOCHS} "
            "epochs of training (not the last epoch's) after pruning at initialization, read from "
            f"{source_line(source, arch)} (rand, mag, cs = SNIP, grasp, sf = SynFlow).")
    return [f"## Published: Synaptic-Flow (Tanaka et al. 2020), {name} on {on}, top-1 (%), "
            f"mean ± std over {SYNFLOW_SEEDS} seeds",
            note, published_table(source, arch)]
