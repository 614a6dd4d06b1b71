"""Inductor graph passes that run at ``torch.compile`` time: the ELAS FFN fusion (installed by
``apply``) and the opt-in step passes (``elas_compile.step_passes``)."""
