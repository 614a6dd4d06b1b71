"""Exceptions raised by elas_compile. Each message names the module and the way out."""


class ELASError(ValueError):
    """Base class: bad input to :func:`elas_compile.apply` or a related call."""


class AlreadyCompiledError(ELASError):
    """apply() was given a model already wrapped by torch.compile."""


class AlreadyAppliedError(ELASError):
    """apply() was given a model that already holds ELAS modules."""


class NothingMatchedError(ELASError):
    """No MLP in the model matched a supported pattern."""


class UnsupportedActivationError(ELASError):
    """A gated MLP whose gate activation is not SiLU or GELU."""


class ShapeError(ELASError):
    """A feature size the 2:4 rewrite cannot handle (e.g. not a multiple of 4)."""
