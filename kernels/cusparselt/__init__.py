"""cuSPARSELt sparse GEMMs with plans cached per shape (``plan_cache.cpp``, built on first use by
``library``)."""
