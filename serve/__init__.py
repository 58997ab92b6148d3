"""The streaming scorer: sources, micro-batching, sinks, metrics, shutdown."""
