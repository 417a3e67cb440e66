"""`python -m tokentango.train [overrides]` (`--multirun` for a sweep): the Hydra entry
point is tokentango.run, the training loop tokentango.loop."""

from tokentango.run import cli

if __name__ == "__main__":
    cli()
