"""Model building for solver: imports `solver`, never the other way round.

Training needs TensorFlow (install the `train` extra: `pip install -e '.[train]'`).
"""
