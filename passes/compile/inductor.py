"""Installing elas_compile's passes into Inductor, and their cache keys.

Two kinds of pass, installed in two ways:

- The ELAS passes (``fusion``: the fused FFN op, relu² + 2:4 fusion) touch ELAS ops alone.
  :func:`install` (called by ``elas_compile.apply``) chains them, once, to Inductor's
  ``pre_grad_custom_pass`` and ``post_grad_custom_post_pass``; on a graph without ELAS ops they
  change nothing.
- The step passes (``trig_tables``: RoPE sin/cos once; ``layout_copies``: no copy of a tensor
  already laid out as asked) rewrite any LLaMA-like graph. They are opt-in:
  :func:`step_passes` enables them for the compilations that happen inside it,
  :func:`enable_step_passes` for the rest of the process.

Chaining never overwrites a pass the user set: it keeps running, before ours. Every pass is a
``CustomGraphPass`` whose ``uuid()`` hashes the source files of every op, kernel and pass of
elas_compile (an edit anywhere invalidates Inductor's caches); the chosen kernel backend is an
argument of the fused op, so it is part of the graph and of every cache key too.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
from pathlib import Path

import torch
from torch._inductor import config as inductor_config
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files

from elas_compile.passes.compile import fusion, layout_copies, trig_tables

@functools.cache
def source_files() -> tuple[str, ...]:
    """Every source file that decides what an ELAS graph computes: the package's own modules
    (the training CLI and data code excluded), the passes and the kernels."""
    import elas_compile.kernels
    import elas_compile.passes

    files = set(Path(elas_compile.__file__).resolve().parent.glob("*.py"))
    for package in (elas_compile.passes, elas_compile.kernels):
        for folder in package.__path__:
            files |= {f.resolve() for f in Path(folder).rglob("*") if f.suffix in (".py", ".cu", ".cuh")}
    return tuple(sorted(str(f) for f in files))


class _ELASPass(CustomGraphPass):
    rewrite = None
    name = ""

    def __call__(self, graph: torch.fx.Graph) -> None:
        type(self).rewrite(graph)

    def uuid(self) -> bytes:
        return get_hash_for_files(source_files(), extra=self.name)


class ELASPreGradPass(_ELASPass):
    """Fuses the readable ELAS FFN ops into the fused op of the resolved backend."""

    rewrite = staticmethod(fusion.pre_grad_rewrite)
    name = "elas_pre_grad"


class ELASPostGradPass(_ELASPass):
    """Fuses aten relu -> pow(2) -> elas.sparsify24 into elas.relu2_sparsify24."""

    rewrite = staticmethod(fusion.post_grad_rewrite)
    name = "elas_post_grad"


class TrigTablePass(_ELASPass):
    """Computes each RoPE sin/cos table once instead of in every layer's kernel (trig_tables.py)."""

    rewrite = staticmethod(trig_tables.materialize_trig_tables)
    name = "elas_trig_tables"


class LayoutCopyPass(_ELASPass):
    """Skips the copies of permuted tensors already laid out as asked (layout_copies.py)."""

    rewrite = staticmethod(layout_copies.skip_layout_copies)
    name = "elas_layout_copies"


class ChainedPass(CustomGraphPass):
    """Runs several passes in order (torch 2.11 takes one callable per option, not a list)."""

    def __init__(self, passes) -> None:
        self.passes = list(passes)

    def __call__(self, graph: torch.fx.Graph) -> None:
        for p in self.passes:
            p(graph)

    def uuid(self):
        """Hash of the passes' uuids; None when one has none, so that Inductor runs the chain
        before its cache lookup (as it does for any pass without a uuid) instead of caching it."""
        h = hashlib.sha256()
        for p in self.passes:
            u = p.uuid() if isinstance(p, CustomGraphPass) else None
            if u is None:
                return None
            h.update(repr(u).encode())
        return h.digest()


def _flatten(current) -> list:
    if current is None:
        return []
    if isinstance(current, ChainedPass):
        return list(current.passes)
    if isinstance(current, (list, tuple)):
        return [q for p in current for q in _flatten(p)]
    return [current]


def _chained(option: str, new_passes) -> CustomGraphPass | None:
    """The value of ``option`` with ``new_passes`` appended (those of a type already there skipped)."""
    passes = _flatten(getattr(inductor_config, option))
    for new in new_passes:
        if not any(isinstance(p, type(new)) for p in passes):
            passes.append(new)
    return ChainedPass(passes) if passes else None


# the ELAS passes, by Inductor option, in the order they run
_ELAS = (("pre_grad_custom_pass", ELASPreGradPass), ("post_grad_custom_post_pass", ELASPostGradPass))


def install() -> None:
    """Add the ELAS passes to Inductor's config (idempotent; existing passes kept)."""
    for option, cls in _ELAS:
        setattr(inductor_config, option, _chained(option, [cls()]))


def uninstall() -> None:
    """Remove every elas_compile pass from Inductor's config (others kept)."""
    ours = (ELASPreGradPass, ELASPostGradPass, TrigTablePass, LayoutCopyPass)
    for option in ("pre_grad_custom_pass", "post_grad_custom_post_pass"):
        kept = [p for p in _flatten(getattr(inductor_config, option)) if not isinstance(p, ours)]
        setattr(inductor_config, option, ChainedPass(kept) if len(kept) > 1 else (kept[0] if kept else None))


def _step_pass_list(rope_tables: bool, layout_copies: bool) -> list:
    return ([TrigTablePass()] if rope_tables else []) + ([LayoutCopyPass()] if layout_copies else [])


def enable_step_passes(rope_tables: bool = True, layout_copies: bool = True) -> None:
    """Enable the step passes (see :func:`step_passes`) for every later compilation of this
    process, ELAS model or not, until :func:`uninstall`. The training CLI and the benchmarks call
    it for every variant, baselines included, so that comparisons stay fair."""
    option = "post_grad_custom_post_pass"
    setattr(inductor_config, option, _chained(option, _step_pass_list(rope_tables, layout_copies)))


@contextlib.contextmanager
def step_passes(rope_tables: bool = True, layout_copies: bool = True):
    """Enable the step passes for every ``torch.compile`` compilation inside this block.

    Compilation is lazy: the first forward compiles the forward graph and the first backward the
    backward graph, so put the training loop (or at least its first steps, and every step that
    may recompile) inside::

        compiled = torch.compile(model, mode="reduce-overhead")
        with elas_compile.step_passes():
            for batch in data:
                compiled(**batch).loss.backward(); ...

    ``rope_tables``: compute each RoPE sin/cos table once per graph instead of in every layer's
    kernels (passes/compile/trig_tables.py). ``layout_copies``: skip copies of permuted tensors
    that already have the asked layout (passes/compile/layout_copies.py). Both keep results equal.
    """
    new = _step_pass_list(rope_tables, layout_copies)
    with inductor_config.patch(post_grad_custom_post_pass=_chained("post_grad_custom_post_pass", new)):
        yield
