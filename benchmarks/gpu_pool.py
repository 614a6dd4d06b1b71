"""Independent benchmark jobs, spread over the GPUs of one host: one process per GPU.

A suite whose jobs do not share anything (a model, a compile cache, a measurement) runs them
with :func:`run_jobs`. With one GPU (or a CPU) the jobs run here, one after the other. With
``gpus > 1`` each of ``gpus`` spawned processes owns ``cuda:i`` and takes the next job from a
shared queue until none is left, so a grid of cold compilations (a minute or more each) takes
the time of ``len(jobs) / gpus`` of them. Jobs on different GPUs run at the same time: their GPU
work does not interact, their host work shares the CPU cores (Inductor's compile workers are
divided among the processes).

``deadline`` (a ``time.time()``): each job is given its share of the time left, ``(deadline -
now) / ceil(jobs not started / processes)``, as its own deadline; what a job does with it is its
business (the ``memory`` suite stops its search). A job not started by the deadline is not run:
its rows are ``skipped_rows(job)``.
"""
from __future__ import annotations

import math
import os
import time
import traceback
from typing import Callable, Optional

import torch

from elas_compile.train.errors import first_line

Job = dict  # picklable: what the job function needs to know
JobFn = Callable[[Job, Optional[float]], list]  # (job, the job's own deadline) -> rows
SkipFn = Callable[[Job, str], list]  # (job, why) -> its rows


def _share(deadline: Optional[float], jobs_left: int, processes: int) -> Optional[float]:
    if deadline is None:
        return None
    now = time.time()
    return now + max(0.0, deadline - now) / max(1, math.ceil(jobs_left / processes))


def _run_one(fn: JobFn, skipped: SkipFn, job: Job, deadline: Optional[float], jobs_left: int,
             processes: int) -> list:
    if deadline is not None and time.time() >= deadline:
        return skipped(job, "skipped: the time budget (--budget-s) was spent before it started")
    try:
        return fn(job, _share(deadline, jobs_left, processes))
    except Exception as e:  # one failing job must not lose the others' rows
        return skipped(job, f"error: {type(e).__name__}: {first_line(e)}"[:300])


def _worker(gpu: int, processes: int, fn: JobFn, skipped: SkipFn, jobs: list, deadline: Optional[float],
            todo, done, left) -> None:
    if torch.cuda.is_available():  # (the pool's own tests run it on a CPU)
        torch.cuda.set_device(gpu)
    from torch._inductor import config as inductor_config

    inductor_config.compile_threads = max(1, (os.cpu_count() or processes) // processes)
    while (index := todo.get()) is not None:
        with left.get_lock():
            jobs_left = left.value
            left.value -= 1
        try:
            rows = _run_one(fn, skipped, jobs[index], deadline, jobs_left, processes)
        except BaseException:
            rows = skipped(jobs[index], f"error: {traceback.format_exc().strip().splitlines()[-1]}"[:300])
        for row in rows:
            row["gpu"] = gpu
        done.put((index, rows))  # a SimpleQueue writes now: a crash in the next job cannot lose it


def run_jobs(fn: JobFn, jobs: list, *, skipped: SkipFn, gpus: int = 1, deadline: Optional[float] = None) -> list:
    """The rows of every job, in the jobs' order (see the module's doc). ``fn`` and ``skipped`` must
    be module-level functions (the spawned processes import them)."""
    if gpus <= 1:
        rows = []
        for i, job in enumerate(jobs):
            rows += _run_one(fn, skipped, job, deadline, len(jobs) - i, 1)
        return rows
    ctx = torch.multiprocessing.get_context("spawn")
    todo, done, left = ctx.SimpleQueue(), ctx.SimpleQueue(), ctx.Value("i", len(jobs))
    for i in [*range(len(jobs)), *[None] * gpus]:  # a None per process: no job left
        todo.put(i)
    procs = [ctx.Process(target=_worker, args=(g, gpus, fn, skipped, jobs, deadline, todo, done, left), daemon=True)
             for g in range(gpus)]
    for p in procs:
        p.start()
    results: dict[int, list] = {}
    while len(results) < len(jobs):
        if not done.empty():
            index, rows = done.get()
            results[index] = rows
        elif not any(p.is_alive() for p in procs):
            if done.empty():
                break  # a process died (a CUDA fatal error, a signal) with its job unfinished
        else:
            time.sleep(0.2)
    for p in procs:
        p.join(timeout=30)
    lost = "error: its worker process died (exit codes " + ", ".join(str(p.exitcode) for p in procs) + ")"
    return [row for i, job in enumerate(jobs) for row in (results[i] if i in results else skipped(job, lost))]
