"""The report's summary, on hand-made metrics.json entries: which model is "dense", the change against
it, both compression definitions named, wording, the header, the density figure and the terminal lines."""

from __future__ import annotations

from pathlib import Path

from prunelab import config
from prunelab.families.filters.report import describe as describe_filters
from prunelab.report import terminal
from prunelab.report.baseline import compare
from prunelab.report.experiment import compression_note, density_figure, rounds_description, rounds_table
from prunelab.report.markdown import plural, words
from prunelab.report.summary import change_note, summary_table
from prunelab.stages.report import header

PRETRAINED = "results/lenet300_100_fashion/dense.pt"


def entry(accuracy: float, nonzero: int = 266_200, **extra) -> dict:
    """A metrics.json model entry (LeNet-300-100 sized)."""
    timing = {size: {"ms_per_batch": ms, "images_per_s": int(size) / ms * 1000}
              for size, ms in (("1", 0.05), ("128", 0.8))}
    return {"accuracy": accuracy, "loss": 0.3, "params": 266_610, "nonzero_params": nonzero + 410, "weights": 266_200,
            "nonzero_weights": nonzero, "compression": 266_200 / nonzero, "flops": 266_200,
            "effective_flops": float(nonzero), "theoretical_speedup": 266_200 / nonzero,
            "latency": {"cpu": timing}, **extra}


def experiment(**train) -> config.Experiment:
    raw = {"name": "hs", "data": {"dataset": "fashion-mnist"}, "model": {"arch": "lenet300_100"},
           "train": train, "prune": {"method": "threshold", "std_ratio": 0.25}}
    return config.parse(raw, "hs.toml")


def regularized_metrics() -> dict:
    return {"dense": entry(89.05), "pruned": entry(89.41, nonzero=16_148),
            "pretrained": entry(90.37, path=PRETRAINED), "device": "cpu", "torch_threads": 1}


# ------------------------------------------------------------------ 1. the real dense baseline


def test_the_pretrained_model_is_dense_and_changes_are_against_it():
    exp = experiment(pretrained=PRETRAINED, regularizer={"kind": "hoyer_square", "decay": 3e-5})
    compared = compare(exp, regularized_metrics())
    labels = [label for label, _ in compared.rows]
    assert labels == ["dense", "regularized (train.regularizer: hoyer_square, decay 3e-05)", "pruned"]
    assert compared.baseline["accuracy"] == 90.37
    assert round(compared.change(compared.entry("pruned")), 2) == -0.96  # not +0.36 against the regularized model
    rows = {line.split("|")[1].strip(): [cell.strip() for cell in line.split("|")[2:-1]]
            for line in summary_table(compared, []).splitlines()[2:]}
    assert rows["dense"][:2] == ["90.37", "-"]
    assert rows["regularized (train.regularizer: hoyer_square, decay 3e-05)"][:2] == ["89.05", "-1.32"]
    assert rows["pruned"][:2] == ["89.41", "-0.96"]
    note = change_note(compared, [])
    assert f"Dense is `{PRETRAINED}`" in note and "against that dense model" in note
    lines = terminal.experiment_lines("hs: lenet300_100 on Fashion-MNIST", compared, [], 1)
    assert "  top-1: dense 90.37% -> pruned 89.41% (-0.96 points vs dense)" in lines
    assert any(PRETRAINED in line for line in lines)


def test_retrained_without_a_regularizer_is_labelled_with_its_source():
    exp = experiment(pretrained=PRETRAINED)
    labels = [label for label, _ in compare(exp, regularized_metrics()).rows]
    assert labels == ["dense", f"retrained from {PRETRAINED}", "pruned"]


def test_a_pretrained_model_used_as_it_is_is_the_one_dense_row():
    compared = compare(experiment(pretrained=PRETRAINED, epochs=0), regularized_metrics())
    assert [label for label, _ in compared.rows] == ["dense", "pruned"]
    assert compared.baseline["accuracy"] == 90.37 and compared.trained is None
    assert round(compared.change(compared.entry("pruned")), 2) == -0.96
    assert "used as it is: train.epochs = 0" in compared.note


def test_without_a_pretrained_entry_dense_pt_is_dense():
    measured = regularized_metrics()
    del measured["pretrained"]
    compared = compare(experiment(), measured)
    assert [label for label, _ in compared.rows] == ["dense", "pruned"]
    assert compared.baseline["accuracy"] == 89.05 and compared.note == ""
    assert "against the dense row" in change_note(compared, [])


def test_pruned_from_initialization_has_no_change():
    compared = compare(experiment(), {"pruned": entry(80.0, nonzero=26_620)})
    assert compared.baseline is None and compared.change(compared.entry("pruned")) is None
    assert "| pruned  | 80.00       | -" in summary_table(compared, [])
    assert "No dense model was measured" in change_note(compared, [])


# ------------------------------------------------------------------ 2. two compressions, both named

LOG = [{"round": 1, "density": 1 / 17.51, "compression": 17.51, "accuracy_after_prune": 88.55,
        "accuracy_after_finetune": 89.41, "finetune_epochs": 5}]


def test_both_compression_definitions_are_named():
    exp = experiment()
    assert "compression of prunable weights" in rounds_table(LOG).splitlines()[0]
    compared = compare(exp, regularized_metrics())
    assert "compression of all conv/linear weights" in summary_table(compared, []).splitlines()[0]
    note = compression_note(exp.prune, LOG, 16.49)
    assert "*compression of prunable weights*" in note and "17.51x" in note
    assert "*compression of all conv/linear weights*" in note and "16.49x" in note
    assert "not the classifier's" in note and note.count(".") >= 1
    lines = terminal.experiment_lines("hs", compared, LOG, 1)
    assert any("of all conv/linear weights" in line and "17.51x of prunable weights" in line for line in lines)


def test_a_pruner_that_counts_all_parameters_says_so():
    log = [{**LOG[0], "params": 1000, "macs": 5000}]
    assert "compression of all parameters" in rounds_table(log).splitlines()[0]
    assert "*compression of all parameters*" in compression_note(experiment().prune, log, 2.0)


# ------------------------------------------------------------------ 4. and 7. wording, header


def test_plural_and_words():
    assert [plural(1, "thread"), plural(2, "thread"), plural(0, "round"), plural(1.0, "epoch"),
            plural(0.5, "epoch"), plural(1, "batch", "batches"), plural(3, "batch", "batches")] == \
        ["1 thread", "2 threads", "0 rounds", "1 epoch", "0.5 epochs", "1 batch", "3 batches"]
    assert [words([]), words(["a"]), words(["a", "b"]), words(["a", "b", "c"])] == ["", "a", "a and b", "a, b and c"]


def test_one_round_one_thread_one_step_and_no_none_and():
    exp = config.parse({"name": "m", "model": {"arch": "lenet300_100"},
                        "prune": {"sparsity": 0.9, "iterations": 1, "finetune": {"epochs": 1}}}, "m.toml")
    text = rounds_description(exp.prune, "density 0.1000")
    assert "1 round (" in text and "1 fine-tune epoch per round" in text and "1 rounds" not in text
    title, paragraph = header(exp, {"device": "cpu", "torch_threads": 1})
    assert title == "# m: lenet300_100 on MNIST"
    assert "measured with cpu, 1 torch thread." in paragraph and "threads" not in paragraph
    assert "with cpu, 4 torch threads." in header(exp, {"device": "cpu", "torch_threads": 4})[1]
    recorded = {"device": "cpu", "torch_threads": 2, "made_by": {"test": {
        "threads": 2, "torch": "2.13.0+cpu", "device": "cpu", "cpu": "Some CPU", "cpu_capability": "AVX2"}}}
    assert "measured with 2 torch threads, torch 2.13.0+cpu, cpu, Some CPU (AVX2)." in header(exp, recorded)[1]
    filters = config.parse({"name": "f", "model": {"arch": "lenet5"},
                            "prune": {"granularity": "filter", "filters": {"ratio": 0.3, "steps": 1},
                                      "finetune": {"epochs": 1}}}, "f.toml")
    text = describe_filters(filters)
    assert "in 1 step;" in text and "1 epoch of retraining" in text
    assert text.endswith("Never removed: the classifier.") and "none and" not in text


# ------------------------------------------------------------------ 5. the density figure


def _layers(kept: list[int]) -> tuple[list[dict], list[dict]]:
    names = ["fc1", "fc2", "fc3"]
    dense = [{"name": n, "weight_params": 100, "weight_nonzero": 100} for n in names]
    return dense, [{"name": n, "weight_params": 100, "weight_nonzero": k} for n, k in zip(names, kept)]


def test_density_figure_labels_every_bar_and_names_model_and_data_set():
    dense, pruned = _layers([5, 12, 100])
    fig = density_figure(dense, pruned, "lenet300_100", "fashion-mnist")
    ax = fig.axes[0]
    assert "lenet300_100" in ax.get_title() and "Fashion-MNIST" in ax.get_title()
    assert {"5.0%", "12.0%", "100.0%"} <= {text.get_text() for text in ax.texts}


# ------------------------------------------------------------------ 6. the terminal


def test_terminal_lines_fit_80_columns_and_name_report_md():
    exp = experiment(pretrained=PRETRAINED, regularizer={"kind": "group_hoyer_square", "decay": 0.0125})
    compared = compare(exp, regularized_metrics())
    title = terminal.experiment_title("lenet5_caffe_group_hs_fashion_with_a_long_name", "lenet5_caffe", "fashion-mnist")
    lines = terminal.experiment_lines(title, compared, LOG, 1) + terminal.pointer(Path("results/x/report.md"))
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert len(lines) <= 10 and lines[-1].endswith("results/x/report.md")
    long = Path("results") / ("y" * 60) / "report.md"
    assert terminal.pointer(long) == ["full report, with the per-layer tables:", f"  {long}"]
    assert not any("|" in line for line in lines)  # no table rows
