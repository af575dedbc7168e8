"""Training: splits, models and baselines, evaluation, MLflow tracking, the retraining gate.

The one thing done at import: ask the OpenMP runtime (LightGBM's threads) to sleep rather
than spin while waiting. It only takes effect before the runtime loads, hence here, before
any of our modules imports LightGBM or scikit-learn. On a machine shared with other work,
spinning threads fight the other processes for the cores: a 300-tree fit on 37k rows took
20-40 s with spinning and 2-4 s without. A value already in the environment is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
