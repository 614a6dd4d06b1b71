"""Probes and profilers of elas_compile's kernels: run from the repository root as
``python -m tools.NAME`` (README.md beside this file)."""
