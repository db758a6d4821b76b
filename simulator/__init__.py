"""aimcsim: latency, energy and accuracy of transformers on heterogeneous AIMC accelerators."""
__version__ = "0.1.0"
