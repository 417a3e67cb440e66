"""tokentango's Hydra launcher plugin: `hydra/launcher=slurm` (see .slurm)."""
