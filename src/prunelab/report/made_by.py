"""The "How this was made" section: per stage, the command, its overrides (or none) and what CPU
results depend on (thread count, torch, device, CPU), from the made_by records in metrics.json
or sweep.json (provenance.py writes them)."""

from __future__ import annotations

from .markdown import table

# Rows in pipeline order (metrics.json stores its keys sorted).
STAGE_ORDER = ("train", "prune", "compress", "test", "sweep")


def _cell(record: dict, key: str) -> str:
    value = record.get(key)
    return "?" if value is None else str(value)


def made_by_section(made_by: dict, report_overrides: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Markdown blocks; a stage without a record (an artifact from an older prunelab) says so."""
    if not made_by:
        return ["## How this was made", "Not recorded: these artifacts come from a prunelab that did not record "
                "commands, overrides or thread counts. Re-run the stages to record them."]
    rows = []
    ordered = sorted(made_by, key=lambda stage: STAGE_ORDER.index(stage) if stage in STAGE_ORDER else len(STAGE_ORDER))
    for stage in ordered:
        record = made_by[stage]
        if not record:
            rows.append([stage, "not recorded", "?", "?", "?", "?", "?"])
            continue
        overrides = record.get("overrides") or []
        rows.append([
            stage, f"`{record.get('command', '?')}`", ", ".join(f"`{item}`" for item in overrides) or "none",
            _cell(record, "threads"), _cell(record, "torch"), _cell(record, "device"),
            f"{_cell(record, 'cpu')} ({_cell(record, 'cpu_capability')})",
        ])
    blocks = [
        "## How this was made",
        table(rows, ["stage", "command", "overrides", "torch threads", "torch", "device", "CPU"]),
        "CPU results repeat bit for bit only with the same config and overrides, thread count, torch "
        "version and kind of CPU (README, \"Same numbers\").",
    ]
    if report_overrides:
        blocks.append("This report was written with overrides: "
                      + ", ".join(f"`{item}`" for item in report_overrides) + ".")
    return blocks
