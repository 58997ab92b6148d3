"""The model bundle format (save, load, verify without unpickling) and the shipped default model."""

from p2pdetect.models.bundle import DEFAULT_MODEL_DIR, ModelBundle, load_bundle, save_bundle

__all__ = ["DEFAULT_MODEL_DIR", "ModelBundle", "load_bundle", "save_bundle"]
