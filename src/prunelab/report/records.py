"""The highest published compressions a config can put beside its own results (`[report] references`,
docs/references.md): their names and the architectures each has a result for. A leaf module, so that
config/sections.py can check a config's names without importing the reports; references.py holds
the numbers."""

SPARSE_VD = "sparse_vd"  # Molchanov et al. 2017, Sparse Variational Dropout
BAYESIAN_COMPRESSION = "bayesian_compression"  # Louizos et al. 2017, BC-GHS

ARCHS = {SPARSE_VD: ("lenet300_100", "lenet5_caffe"), BAYESIAN_COMPRESSION: ("lenet5_caffe",)}
NAMES = tuple(ARCHS)


def check(names: list[str], arch: str, sweep: bool) -> None:
    """A ValueError naming the `[report] references` key where a config names a record it cannot show."""
    if names and sweep:
        raise ValueError("report.references: a [sweep] report does not show them (a single or `seeds` config does)")
    for name in names:
        if arch not in ARCHS[name]:
            raise ValueError(f"report.references: {name!r} has no published result for arch {arch!r} "
                             f"(it has: {', '.join(ARCHS[name])})")
