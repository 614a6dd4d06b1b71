"""elas_compile's benchmarks: ``python -m benchmarks SUITE [options]`` from the repository root
(README.md beside this file)."""
