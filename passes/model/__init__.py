"""Rewrites of the user's model at ``apply`` time: find MLPs by structure (torch.fx) and build
their ELAS replacements."""
