"""Migration scripts, one per schema change, each with a downgrade."""
