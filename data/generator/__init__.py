"""data.generator: runs real P2P and ordinary clients in a private namespace and captures labelled traffic."""

from data.generator.config import SCENARIOS, GenerateConfig
from data.generator.generate import generate

__all__ = ["SCENARIOS", "GenerateConfig", "generate"]
