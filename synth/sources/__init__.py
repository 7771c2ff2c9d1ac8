"""Real-data sources: each yields ``origin='real'`` samples with a stable id and a ``uri``."""
