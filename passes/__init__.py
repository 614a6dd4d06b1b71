"""FX and Inductor passes of elas_compile (installed as ``elas_compile.passes``)."""
