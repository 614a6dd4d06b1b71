"""Inductor custom passes of elas_compile, installed into ``torch._inductor.config``.

``install()`` chains (never overwrites) our passes to ``pre_grad_custom_pass`` and
``post_grad_custom_post_pass``: a pass the user already set keeps running, before ours. Each pass
is a ``CustomGraphPass`` whose ``uuid()`` hashes its source files, so Inductor's FX graph cache
is invalidated when the pass changes.
"""
from __future__ import annotations

import os

import torch
from torch._inductor import config as inductor_config
from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files

from elas_compile.passes import fusion, layout_copies, trig_tables

_FILES = tuple(os.path.join(os.path.dirname(__file__), f)
               for f in ("fusion.py", "eligibility.py", "inductor.py", "trig_tables.py", "layout_copies.py"))


class _ELASPass(CustomGraphPass):
    rewrite = None
    name = ""

    def __call__(self, graph: torch.fx.Graph) -> None:
        type(self).rewrite(graph)

    def uuid(self) -> bytes:
        return get_hash_for_files(_FILES, extra=self.name)


class ELASPreGradPass(_ELASPass):
    """Fuses the readable ELAS FFN ops into the fast op before autograd is traced."""

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
    """Skips the copies of permuted tensors already laid out as asked (layout_copies.py);
    ``ELAS_LAYOUT_COPIES=keep`` leaves them (for A/B measurements)."""

    rewrite = staticmethod(layout_copies.skip_layout_copies)
    name = "elas_layout_copies"

    @staticmethod
    def setting() -> str:
        return os.environ.get("ELAS_LAYOUT_COPIES", "skip")

    def __call__(self, graph: torch.fx.Graph) -> None:
        if self.setting() != "keep":
            type(self).rewrite(graph)

    def uuid(self) -> bytes:
        return get_hash_for_files(_FILES, extra=self.name + self.setting())


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
        import hashlib

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


def _chain(option: str, new_pass) -> None:
    passes = _flatten(getattr(inductor_config, option))
    if any(isinstance(p, type(new_pass)) for p in passes):
        return
    setattr(inductor_config, option, ChainedPass(passes + [new_pass]))


def install_trig_tables() -> None:
    """Add only the sin/cos table pass."""
    _chain("post_grad_custom_post_pass", TrigTablePass())


def install_step_passes() -> None:
    """Add the passes any LLaMA-like model gains from, ELAS or not: the sin/cos tables once and no
    copies of tensors already laid out as asked (the training CLI installs them for every variant,
    baselines included, so that comparisons stay fair)."""
    install_trig_tables()
    _chain("post_grad_custom_post_pass", LayoutCopyPass())


# every pass this module installs, by Inductor option, in the order they run
_INSTALLED = (("pre_grad_custom_pass", ELASPreGradPass), ("post_grad_custom_post_pass", ELASPostGradPass),
              ("post_grad_custom_post_pass", TrigTablePass), ("post_grad_custom_post_pass", LayoutCopyPass))


def install() -> None:
    """Add the elas_compile passes to Inductor's config (idempotent; existing passes kept)."""
    for option, cls in _INSTALLED:
        _chain(option, cls())


def uninstall() -> None:
    for option, cls in _INSTALLED:
        kept = [p for p in _flatten(getattr(inductor_config, option)) if not isinstance(p, cls)]
        setattr(inductor_config, option, ChainedPass(kept) if len(kept) > 1 else (kept[0] if kept else None))
