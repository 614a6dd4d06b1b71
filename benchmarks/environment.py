"""What a benchmark run records about where and how it ran (meta.json, the report's header)."""
from __future__ import annotations

import datetime
import platform
import re
import shlex
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(given: str | None = None) -> dict:
    """The commit and whether tracked files differ from it (untracked files do not count). Where
    the checkout has no git metadata (a working tree copied to a GPU machine), ``given``
    (``--commit SHA`` or ``SHA-dirty``, from where the tree came from)."""
    commit = _git("rev-parse", "HEAD")
    if commit is not None:
        changed = _git("status", "--porcelain", "--untracked-files=no")
        return {"commit": commit, "dirty": bool(changed) if changed is not None else None, "commit_from": "git"}
    if given:
        return {"commit": given.removesuffix("-dirty"), "dirty": given.endswith("-dirty"), "commit_from": "--commit"}
    return {"commit": None, "dirty": None, "commit_from": None}


def gpu_slug(name: str | None) -> str:
    """A short lower-case name for folder names: 'NVIDIA H100 80GB HBM3' -> 'h100', None -> 'cpu'."""
    if name is None:
        return "cpu"
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w and w not in ("nvidia", "geforce")]
    return next((w for w in words if re.fullmatch(r"[a-z]*\d+[a-z]*", w)), "-".join(words) or "gpu")


def _triton_version() -> str | None:
    try:
        import triton
    except ImportError:
        return None
    return triton.__version__


def _cusparselt_version() -> int | None:
    backend = torch.backends.cusparselt
    return backend.version() if backend.is_available() else None


def command_line(argv: list[str]) -> str:
    """The command as typed from the repository root."""
    return shlex.join(["python", "-m", "benchmarks", *argv])


def run_meta(suite: str, argv: list[str], device: torch.device, commit: str | None = None) -> dict:
    """Everything meta.json records that does not depend on the suite's results."""
    cuda = device.type == "cuda"
    now = datetime.datetime.now(datetime.timezone.utc)
    import elas_compile

    meta = {
        "suite": suite,
        "command": command_line(argv),
        "utc": now.isoformat(timespec="seconds"),
        "date": now.date().isoformat(),
        **git_state(commit),
        "torch": torch.__version__,
        "triton": _triton_version(),
        "cuda": torch.version.cuda,
        "cusparselt": _cusparselt_version(),
        "elas_compile": elas_compile.__version__,
        "python": platform.python_version(),
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "compute_capability": ".".join(map(str, torch.cuda.get_device_capability(device))) if cuda else None,
        "executable": sys.executable,
    }
    meta["gpu_slug"] = gpu_slug(meta["gpu"])
    return meta


def describe(meta: dict) -> str:
    """One line: the GPU (or CPU) and the software versions, for plots and reports."""
    where = f"{meta['gpu']} (sm_{meta['compute_capability'].replace('.', '')})" if meta["gpu"] else "CPU"
    soft = [f"torch {meta['torch']}"]
    if meta.get("triton"):
        soft.append(f"triton {meta['triton']}")
    if meta.get("cuda"):
        soft.append(f"CUDA {meta['cuda']}")
    if meta.get("cusparselt"):
        soft.append(f"cuSPARSELt {meta['cusparselt']}")
    return f"{where}, {', '.join(soft)}"
