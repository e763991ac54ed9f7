"""lmlab: the whole lineage of language models, trained, measured and used on the same data.

See README.md for the tour and DESIGN.md (shared) for the map.
"""

__version__ = "0.1.0"
