"""The model bundle format (save, load, verify without unpickling) and the shipped default model."""
