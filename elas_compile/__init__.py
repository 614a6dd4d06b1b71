"""elas_compile: pre-train low-rank LLMs with 2:4 activation sparsity, on unmodified models.

    model = elas_compile.apply(model, elas_compile.ELASConfig())
    model = torch.compile(model)
"""
from elas_compile import ops  # noqa: F401  (registers torch.ops.elas.*)
from elas_compile.config import ELASConfig

__version__ = "0.1.0"
__all__ = ["ELASConfig", "ops", "__version__"]
