"""The ``python-sources`` data preset: the sources and documentation of this Python installation.

Every ``.py``, ``.rst``, ``.md`` and ``.txt`` file of the standard library and of the installed
packages (site-packages and the user site): a few hundred MB wherever torch and transformers are
installed (330 MB, ~28k files where this was written), on every machine that runs this package,
with no download.

Each top-level package (``torch``, ``numpy``, ``stdlib/asyncio``, ...) goes whole to the training
or to the validation split, decided by a hash of its name: validation text comes from packages the
model never saw (no near-duplicate files on both sides), and a package lands on the same side on
every machine. Packages are read in the order of that hash, so any prefix of the stream (the BPE
tokenizer trains on one) mixes many packages.
"""
from __future__ import annotations

import hashlib
import os
import site
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple

EXTENSIONS = (".py", ".rst", ".md", ".txt")
# Larger files are generated tables and data dumps (e.g. a 4 MB list of AWS policies), not code.
MAX_FILE_BYTES = 1 << 20
# The standard library's folder holds site-packages itself: walked as its own root, not twice.
SKIP_DIRS = {"__pycache__", "site-packages", "dist-packages"}
# Install metadata (file lists, entry points), not text anyone wrote.
SKIP_SUFFIXES = (".dist-info", ".egg-info")
PRESET_VERSION = "1"  # bump when what is read changes (invalidates the cached shards)


@dataclass(frozen=True)
class Package:
    name: str  # "torch", or "stdlib/asyncio" for the standard library
    root: Path
    files: Tuple[Path, ...]  # relative to root


def default_roots() -> List[Tuple[str, Path]]:
    """``(name prefix, folder)`` of the standard library and every site-packages folder."""
    paths = sysconfig.get_paths()
    found = [("stdlib/", paths["stdlib"])]
    user = site.getusersitepackages() if site.ENABLE_USER_SITE else None
    for p in [user, *site.getsitepackages(), paths["purelib"], paths["platlib"]]:
        if p:
            found.append(("", p))
    out, seen = [], set()
    for prefix, p in found:
        real = os.path.realpath(p)
        if os.path.isdir(real) and real not in seen:
            seen.add(real)
            out.append((prefix, Path(real)))
    return out


def split_hash(name: str) -> float:
    """A package's place in [0, 1): below the validation fraction means validation."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) / 16 ** 12


def in_validation(name: str, val_fraction: float) -> bool:
    return split_hash(name) < val_fraction


def _wanted(path: Path) -> bool:
    return path.suffix in EXTENSIONS


def _walk(root: Path, top: Path) -> List[Path]:
    if top.is_file():
        return [top.relative_to(root)] if _wanted(top) else []
    files = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.endswith(SKIP_SUFFIXES))
        files += [Path(dirpath, f).relative_to(root) for f in sorted(filenames) if _wanted(Path(f))]
    return files


def find_packages(roots: Optional[Sequence[Tuple[str, Path]]] = None) -> List[Package]:
    """The packages under ``roots`` (default :func:`default_roots`), in split-hash order. A name
    found in two folders is read from the first (the one Python imports)."""
    packages, seen = [], set()
    for prefix, root in roots if roots is not None else default_roots():
        root = Path(root)
        for entry in sorted(root.iterdir()):
            if entry.name in SKIP_DIRS or entry.name.endswith(SKIP_SUFFIXES):
                continue
            name = prefix + (entry.stem if entry.is_file() else entry.name)
            files = _walk(root, entry)
            if files and name not in seen:
                seen.add(name)
                packages.append(Package(name, root, tuple(files)))
    return sorted(packages, key=lambda p: (split_hash(p.name), p.name))


def inventory(packages: Sequence[Package]) -> Tuple[str, int]:
    """``(key, bytes)``: a hash of every file's package, path, size and modification time
    (``stat`` only; what the cached shards of the preset depend on), and the files' total size."""
    h, total = hashlib.sha256(PRESET_VERSION.encode()), 0
    for pkg in packages:
        h.update(f"\0{pkg.name}\0{pkg.root}".encode())
        for f in pkg.files:
            st = (pkg.root / f).stat()
            total += st.st_size
            h.update(f"\0{f}\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16], total


def read_source_file(path: Path) -> Optional[str]:
    """A file's text, or None for what is not text to learn from: empty, over
    :data:`MAX_FILE_BYTES`, not UTF-8, or with NUL bytes."""
    try:
        if not 0 < path.stat().st_size <= MAX_FILE_BYTES:
            return None
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if "\x00" not in text and text.strip() else None


def documents(packages: Sequence[Package], val_fraction: float) -> Iterator[Tuple[str, str]]:
    """``(text, "train" | "val")`` for every readable file, package by package."""
    for pkg in packages:
        split = "val" if in_validation(pkg.name, val_fraction) else "train"
        for f in pkg.files:
            text = read_source_file(pkg.root / f)
            if text is not None:
                yield text, split
