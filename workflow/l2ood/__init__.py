"""l2ood: L2-normalized features for out-of-distribution detection.

The library behind the Snakemake workflow. It knows nothing of Snakemake: every function takes
plain arrays, dicts and paths, so it is importable and unit-tested on its own.
"""

__version__ = "0.1.0"
