"""`sweep --jobs N`: a grid's unfinished cells run in N worker processes, one whole cell per task
(`reproduce --jobs N` runs a `seeds` config's seeds the same way, a seed per cell).

Workers are spawned, not forked, so no torch state (threads, CUDA) is shared with the parent.
A worker gets only plain data (the config path, the command's --set and --threads, the cell's
id and overrides) and remakes its cell with the functions the serial sweep uses (config.load,
sweep.cell_experiment), so the cell's config and config hashes are the serial run's; a
fingerprint of the parent's cell config checks that. Every cell keeps the config's `threads`:
CPU results are bit-identical only at the same thread count, so the jobs are never given a
share of the cores behind the user's back (a line says when they oversubscribe them).

The parent hands out one cell at a time to each free worker, so a failure stops the handing out
with nothing queued: the running cells finish, then the first failure is raised naming its cell.
A worker's console output goes to the cell's job.log (paths.job_log), never to the terminal,
where the parent draws one progress bar of finished cells.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import sys
import traceback
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from .. import config, paths, provenance
from ..config import Experiment
from ..errors import UserError
from ..log import console, progress_bar, to_file
from ..report.markdown import plural
from ..sweep import cell_experiment

# run_cell(cell, stages, force): the serial sweep's own function, handed to the workers by
# reference (pickled as its module and name), so both paths run a cell the same way.
RunCell = Callable[[Experiment, tuple[str, ...], bool], None]
# remake(base, cell_id, cell_overrides): the cell from the config as loaded (module-level, so it
# pickles by reference): sweep.cell_experiment for a grid's cells, replicates.seed_cell for seeds.
Remake = Callable[[Experiment, str, dict], Experiment]

# After Ctrl-C: how long the running cells get to stop on the terminal's own interrupt, then on
# one sent to them, before their processes are terminated (an atomic write left half-done then
# leaves a stray temp file beside its artifact, never a damaged artifact).
GRACE_S = 2.0
STOP_S = 20.0


@dataclass(frozen=True)
class CellJob:
    """What a worker needs to remake and run one cell: plain, picklable data only."""

    config: str                   # the config path as the user gave it
    overrides: tuple[str, ...]    # the command's --set items, in order
    threads: int | None           # the command's --threads (None: the config's `threads`)
    runner: str                   # how the user ran the sweep (python, pixi, prunelab), for made_by and hints
    cell_id: str
    cell_overrides: dict          # the cell's {dotted key: value} (sweep.cell_overrides)
    stages: tuple[str, ...]
    force: bool
    fingerprint: str              # the parent's cell config (fingerprint()), to check the remade one
    log: str                      # paths.job_log of the cell
    task: str = "sweep"           # the task the user ran, for made_by and hints
    remake: Remake = cell_experiment


@dataclass(frozen=True)
class Outcome:
    cell_id: str
    failure: str | None = None    # None: finished; "user" (a UserError), "crash" or "interrupted"
    message: str = ""
    trace: str = ""               # the worker's traceback of a crash


class WorkerTraceback(Exception):
    """A worker's traceback as text: the cause of the parent's error, so it is printed too."""

    def __str__(self) -> str:
        return "\n\n" + self.args[0]


def fingerprint(cell: Experiment) -> str:
    return hashlib.sha256(json.dumps([cell.path, cell.model_dump(mode="json")], sort_keys=True).encode()).hexdigest()


def _ignore_interrupts() -> None:
    """Worker initializer: Ctrl-C in the terminal reaches every process of its group. An idle
    worker ignores it (the parent stops the pool); a running cell takes it, see _work."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _remake(job: CellJob) -> Experiment:
    """The cell as the serial sweep makes it: the config as cli.run loads it, then the cell."""
    base = config.load(job.config, list(job.overrides))
    if job.threads is not None:
        base.threads = job.threads
    cell = job.remake(base, job.cell_id, job.cell_overrides)
    if fingerprint(cell) != job.fingerprint:
        raise UserError(f"{job.config}: the cell remade in its worker process (from this file, --set and --threads) "
                        f"differs from the {job.task}'s: the file or prunelab changed since the sweep started, or the "
                        "sweep's config was changed in code or by a family registered at run time; run again, "
                        "or without --jobs")
    return cell


def _work(job: CellJob, run_cell: RunCell) -> Outcome:
    """A worker's task: one whole cell, its output appended to its job.log. Every failure comes
    back as plain text (an exception object might not unpickle in the parent)."""
    log = Path(job.log)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8", buffering=1) as handle:
        saved = sys.stdout, sys.stderr
        try:
            sys.stdout = sys.stderr = handle  # warnings and stray prints too
            signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C stops the cell, as in a serial run
            with to_file(handle):
                handle.write(f"--- {datetime.now(timezone.utc).isoformat(timespec='seconds')} "
                             f"{job.task} --jobs: cell {job.cell_id} (pid {os.getpid()})\n")
                with provenance.invoked(job.task, job.config, job.overrides, job.threads, job.runner):
                    run_cell(_remake(job), job.stages, job.force)
            return Outcome(job.cell_id)
        except UserError as error:
            handle.write(f"error: {error}\n")
            return Outcome(job.cell_id, "user", str(error))
        except KeyboardInterrupt:
            handle.write("interrupted\n")
            return Outcome(job.cell_id, "interrupted", "interrupted")
        except BaseException as error:  # a bug or an environment failure (SystemExit too): keep its traceback
            trace = traceback.format_exc()
            handle.write(trace)
            return Outcome(job.cell_id, "crash", f"{type(error).__name__}: {error}", trace)
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            sys.stdout, sys.stderr = saved


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _job(exp: Experiment, cell_id: str, cell: Experiment, overrides: dict, force: bool, stages: tuple[str, ...],
         task: str, remake: Remake) -> CellJob:
    invocation = provenance.invocation(exp)  # the command line the sweep was started with
    return CellJob(invocation.config, invocation.overrides, invocation.threads, invocation.runner, cell_id,
                   overrides, stages, force, fingerprint(cell), str(paths.job_log(cell)), task, remake)


def _raise(failure: Outcome, log: str, others: int, task: str) -> None:
    """The first failure, naming its cell, as a UserError (one line, exit 2) or, for a crash, an
    error whose cause prints the worker's traceback."""
    more = f"; {plural(others, 'other cell')} failed too" if others else ""
    output = f" (its output: {log})" if Path(log).is_file() else ""  # none if its worker could not start
    if failure.failure == "crash":
        raise RuntimeError(f"{task} cell {failure.cell_id} failed in its worker process: {failure.message}{output}"
                           f"{more}") from WorkerTraceback(failure.trace)
    raise UserError(f"{task} cell {failure.cell_id}: {failure.message}{output}{more}")


def _workers(before: set) -> list:
    """The pool's processes: this process's multiprocessing children that were not there before it."""
    return [process for process in multiprocessing.active_children() if process not in before]


def _stop(running: dict[Future, CellJob], before: set) -> bool:
    """After Ctrl-C in the parent: stop the running cells (they keep what they have written;
    a re-run resumes them). True when every worker stopped on an interrupt."""
    pending = set(running)
    if pending:
        pending = wait(pending, timeout=GRACE_S).not_done  # Ctrl-C in a terminal reached the workers too
    if pending and os.name == "posix":
        for process in _workers(before):  # e.g. `kill -INT` of the parent alone
            os.kill(process.pid, signal.SIGINT)
        pending = wait(pending, timeout=STOP_S).not_done
    if pending:
        for process in _workers(before):
            process.terminate()
            process.join(timeout=5)
    return not pending


def run_jobs(exp: Experiment, todo: list[tuple[str, Experiment, dict]], total: int, jobs: int, label: str,
             force: bool, run_cell: RunCell, stages: tuple[str, ...] | None = None, task: str = "sweep",
             remake: Remake = cell_experiment) -> None:
    """Run the cells in `todo` in up to `jobs` worker processes, under one bar of the `total` cells;
    each runs `stages` (default: the [sweep] table's) through run_cell."""
    workers = min(jobs, len(todo))
    done = total - len(todo)
    if not todo:
        console.print(f"{done} of {total} cells finished already; nothing to run", markup=False, highlight=False)
        return
    unit = "cell" if task == "sweep" else "seed"
    console.print(f"{done} of {plural(total, unit)} finished already; running {plural(len(todo), unit)} in "
                  f"{plural(workers, 'job')}", markup=False, highlight=False)
    cpus = usable_cpus()
    if workers * exp.threads > cpus:
        console.print(f"{plural(workers, 'job')} x {plural(exp.threads, 'thread')} on {plural(cpus, 'CPU')}: "
                      "the jobs will share cores (each keeps the config's threads; --threads sets them)",
                      markup=False, highlight=False)
    stages = tuple(exp.sweep.stages) if stages is None else stages
    queue = deque(_job(exp, cell_id, cell, overrides, force, stages, task, remake) for cell_id, cell, overrides in todo)
    before = set(multiprocessing.active_children())
    executor = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_ignore_interrupts)
    running: dict[Future, CellJob] = {}
    failures: list[tuple[Outcome, str]] = []
    clean = True
    try:
        with progress_bar(transient=False) as progress:
            bar = progress.add_task(label, total=total, completed=done, status="")
            while queue or running:
                while queue and len(running) < workers and not failures:  # a failure stops the handing out
                    job = queue.popleft()
                    running[executor.submit(_work, job, run_cell)] = job
                if not running:
                    break
                for future in wait(running, return_when=FIRST_COMPLETED).done:
                    job = running.pop(future)
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:  # the process died: killed, out of memory, a crash in C
                        outcome = Outcome(job.cell_id, "user", "its worker process died (killed, out of memory, or "
                                          "it could not start: see above); a re-run resumes it, with fewer --jobs "
                                          "if memory ran out")
                    if outcome.failure is None:
                        progress.update(bar, advance=1, status=outcome.cell_id)
                        continue
                    if not failures and running and outcome.failure != "interrupted":
                        progress.console.print(f"cell {job.cell_id} failed; waiting for "
                                               f"{plural(len(running), 'running cell')} to finish",
                                               markup=False, highlight=False)
                    failures.append((outcome, job.log))
    except KeyboardInterrupt:
        clean = _stop(running, before)
        raise
    finally:
        executor.shutdown(wait=clean, cancel_futures=True)
    if failures:
        interrupted = [outcome for outcome, _ in failures if outcome.failure == "interrupted"]
        if len(interrupted) == len(failures):
            raise KeyboardInterrupt  # the workers alone were interrupted: the cli names the resuming command
        first, log = next((outcome, log) for outcome, log in failures if outcome.failure != "interrupted")
        _raise(first, log, len(failures) - 1, task)
