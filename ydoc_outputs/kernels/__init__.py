"""kernels layer of ydoc_outputs (see the modules)."""
