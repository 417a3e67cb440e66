"""`python -m tests.fault_runner POINT N [--prepare] [--slow S] -- ARGS...`:
`python -m tokentango.train ARGS` (or `tokentango.prepare ARGS`) in a real process, with a
fault injected from outside the production code (the function at POINT is monkeypatched
here; tokentango has no test hooks).
tests/test_kill.py launches it and relaunches the plain command to see what survives.

POINT, the N-th time it is reached (from 1):
  checkpoint  torch.save writes the first half of a checkpoint into its temporary file, then
              the process SIGKILLs itself
  metrics     rundir.append_metrics writes the first half of its line, then SIGKILL
  cache       the cache build has written its tokenizer and N batches of token ids into its
              temporary folder, then SIGKILL
  fsize       once the N-th checkpoint is written, the file size limit (RLIMIT_FSIZE) drops to
              half that checkpoint's size: the next one fails with a real EFBIG (the caller
              ignores SIGXFSZ, which would kill the process instead)
  digest      no fault (N unused): each dataset loaded prints
              `digest <cache folder> <hash of the token arrays and tokenizer it read>`
--slow S: a cache build in this process first sleeps S seconds (holding the cache's lock),
so processes started together overlap.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path


def die() -> None:
    """SIGKILL, as the OOM killer or `kill -9` would: no handler, no cleanup runs."""
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def on_nth(n: int, real, fault):
    """`real`, except that its n-th call is `fault(real, *args)`."""
    calls = [0]

    def patched(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            return fault(real, *args, **kwargs)
        return real(*args, **kwargs)

    return patched


def dataset_digest(data) -> str:
    digest = hashlib.blake2b(data.tokenizer.to_str().encode(), digest_size=16)
    for name in sorted(data.splits):
        split = data.splits[name]
        for array in (split.ids, split.lengths, split.labels):
            digest.update(array.tobytes())
    return digest.hexdigest()


def inject(point: str, n: int) -> None:
    import torch

    from tokentango import checkpoints, data, rundir

    if point == "checkpoint":

        def half_then_die(real, obj, f, *args, **kwargs):
            whole = io.BytesIO()
            real(obj, whole, *args, **kwargs)
            f.write(whole.getvalue()[: len(whole.getvalue()) // 2])
            f.flush()
            die()

        torch.save = on_nth(n, torch.save, half_then_die)
    elif point == "metrics":

        def half_line_then_die(real, run_dir, record):
            line = json.dumps(record) + "\n"
            with (Path(run_dir) / rundir.METRICS_FILE).open("a") as f:
                f.write(line[: len(line) // 2])
            die()

        rundir.append_metrics = on_nth(n, rundir.append_metrics, half_line_then_die)
    elif point == "cache":

        def write_then_die(real, writer, *args, **kwargs):
            real(writer, *args, **kwargs)
            writer.file.flush()
            die()

        data._SplitWriter.write = on_nth(n, data._SplitWriter.write, write_then_die)
    elif point == "fsize":
        real_save = checkpoints.save_checkpoint
        saved = [0]

        def save_then_limit(*args, **kwargs):
            path = real_save(*args, **kwargs)
            saved[0] += 1
            if saved[0] == n:
                limit = path.stat().st_size // 2
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
            return path

        checkpoints.save_checkpoint = save_then_limit
    elif point == "digest":
        real_load = data.load_dataset

        def load_and_print(*args, **kwargs):
            loaded = real_load(*args, **kwargs)
            print(f"digest {loaded.cache_dir} {dataset_digest(loaded)}", flush=True)
            return loaded

        data.load_dataset = load_and_print
    else:
        raise SystemExit(f"unknown point {point}")


def slow_down_builds(seconds: float) -> None:
    from tokentango import data

    real_build = data._build

    def slow_build(*args, **kwargs):
        time.sleep(seconds)
        return real_build(*args, **kwargs)

    data._build = slow_build


def main() -> None:
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    parser = argparse.ArgumentParser(prog="python -m tests.fault_runner")
    parser.add_argument("point")
    parser.add_argument("n", type=int)
    parser.add_argument("--prepare", action="store_true", help="tokentango.prepare, not train")
    parser.add_argument("--slow", type=float, default=0.0, help="seconds a cache build sleeps")
    options, args = parser.parse_args(argv[:split]), argv[split + 1 :]
    inject(options.point, options.n)
    if options.slow:
        slow_down_builds(options.slow)
    if options.prepare:
        from tokentango.cli.prepare import main as prepare

        sys.exit(prepare(args))
    from tokentango import run

    sys.argv = ["tokentango.train", *args]
    run.cli()


if __name__ == "__main__":
    main()
