"""kgax: knowledge-graph recommendation in functional JAX."""

__version__ = "0.1.0"
