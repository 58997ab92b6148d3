"""p2pdetect.data.generator: runs real P2P and ordinary clients in a private namespace and captures labelled traffic."""

from p2pdetect.data.generator.config import SCENARIOS, GenerateConfig
from p2pdetect.data.generator.generate import generate

__all__ = ["SCENARIOS", "GenerateConfig", "generate"]
