"""publish: a finished run's report and its small artifacts -> the checked-in results/<name>/.

The only way tracked reference reports change. The report is regenerated first (which
checks every artifact's digest and freshness), and a run made with `--set` overrides
is refused unless `allow_overrides` (the report then lists them). Each file is copied
atomically; files of an earlier publication that this run does not have are removed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import paths, provenance
from ..atomic import atomic_path, load_json
from ..config import Experiment
from ..errors import UserError
from ..log import console
from .report import report

# What a published report consists of: the report, its figures and the small logs it is made from.
PUBLISHED_PATTERNS = ("report.md", "*.png", "metrics.json", "*.csv", "sweep.json", "replicates.json", "compress.json")


def overridden_stages(exp: Experiment) -> dict[str, list[str]]:
    """{stage: its --set overrides} for every stage of the run (and this publish) that had any."""
    if exp.seeds:  # each seed's stages
        records = [record for measured in load_json(paths.replicates_summary(exp))["metrics"].values()
                   for record in measured.get("made_by", {}).items()]
    else:
        summary = paths.sweep_summary(exp) if exp.sweep is not None else paths.metrics(exp)
        records = list(load_json(summary).get("made_by", {}).items())
    found: dict[str, list[str]] = {}
    for stage, record in records:
        if record:
            found.setdefault(stage, [])
            found[stage] += [item for item in record.get("overrides", []) if item not in found[stage]]
    found["publish"] = list(provenance.invocation(exp).overrides)
    # `seeds` only picks which replicates run; the report names the seeds that did (and the missing ones).
    found = {stage: [item for item in items if item.split("=", 1)[0].strip() != "seeds"] for stage, items in found.items()}
    return {stage: overrides for stage, overrides in found.items() if overrides}


def publish(exp: Experiment, force: bool = False, allow_overrides: bool = False) -> None:
    """Regenerate the run's report and copy it with its figures and logs to results/<name>/."""
    source, target = paths.run_dir(exp), paths.published_dir(exp)
    if source.resolve() == target.resolve():
        raise UserError(f"{exp.path}: results_root: the run already writes to {target}; runs must write elsewhere "
                        "(the default is runs/) so that only publish changes the checked-in reports")
    report(exp)
    overridden = overridden_stages(exp)
    if overridden and not allow_overrides:
        listed = "; ".join(f"{stage}: {' '.join(items)}" for stage, items in overridden.items())
        raise UserError(f"{paths.run_dir(exp)}: made with --set overrides ({listed}); re-run without them, "
                        "or publish with --allow-overrides (the report lists them)")
    files = sorted({path for pattern in PUBLISHED_PATTERNS for path in source.glob(pattern) if path.is_file()})
    for path in files:
        with atomic_path(target / path.name) as tmp:
            shutil.copyfile(path, tmp)
    names = {path.name for path in files}
    stale = [old for pattern in PUBLISHED_PATTERNS for old in target.glob(pattern) if old.name not in names]
    for old in stale:
        Path(old).unlink()
    console.print(f"[green]{target}[/]: published {len(files)} files from {source}"
                  + (f" (removed {len(stale)} no longer made)" if stale else ""))
