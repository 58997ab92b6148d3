"""p2pdetect: the command line that wires features, training, models and serve together."""

__version__ = "0.1.0"
