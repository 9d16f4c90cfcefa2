"""handlers layer of ydoc_outputs (see the modules)."""
