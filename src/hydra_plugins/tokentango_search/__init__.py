"""tokentango's Optuna sweeper (the search preset, conf/hydra/sweeper/search.yaml).

Hydra instantiates sweepers only from the `hydra_plugins` namespace package, so the one
class tokentango adds to hydra-optuna-sweeper lives here rather than in `tokentango`.
"""
