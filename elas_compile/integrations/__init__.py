"""Integrations of elas_compile with other libraries' training loops (each imports its library)."""
