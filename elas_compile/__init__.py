"""elas_compile: pre-train low-rank LLMs with 2:4 activation sparsity, on unmodified models.

    model = elas_compile.apply(model, elas_compile.ELASConfig())
    model = torch.compile(model)
    schedule = elas_compile.SparsitySchedule(model)   # .step() after each optimizer step
"""
import os as _os

# In a source checkout, passes/ and kernels/ sit beside this folder; installs map them to
# elas_compile.passes / elas_compile.kernels (pyproject). Running from the checkout (cwd on
# sys.path shadows an editable install's finder), point the package path at them too.
_root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if _os.path.isfile(_os.path.join(_root, "kernels", "cslt_layout.py")) and _root not in __path__:
    __path__.append(_root)

from elas_compile import ops  # noqa: E402,F401  (registers torch.ops.elas.*)
from elas_compile import fused_ffn  # noqa: E402,F401  (registers the fast FFN op)
from elas_compile import autocast  # noqa: E402,F401  (autocast rules of the elas ops)
from elas_compile.api import apply, elas_mlps
from elas_compile.checkpoint import from_pretrained, save_pretrained
from elas_compile.config import ELASConfig
from elas_compile.errors import (AlreadyAppliedError, AlreadyCompiledError, ConfigError, ELASError,
                                 NothingMatchedError, ShapeError, UnsupportedActivationError)
from elas_compile.lowrank import LowRankLinear
from elas_compile.merge import merge
from elas_compile.passes.compile.inductor import enable_step_passes, step_passes
from elas_compile.report import explain
from elas_compile.schedule import SparsitySchedule
from elas_compile.summary import ApplySummary

__version__ = "0.1.0"
__all__ = [
    "apply", "elas_mlps", "explain", "ELASConfig", "step_passes", "enable_step_passes", "SparsitySchedule", "LowRankLinear", "ELASError",
    "AlreadyAppliedError", "AlreadyCompiledError", "ConfigError", "NothingMatchedError", "ShapeError", "ApplySummary",
    "UnsupportedActivationError", "save_pretrained", "from_pretrained", "merge", "__version__",
]
