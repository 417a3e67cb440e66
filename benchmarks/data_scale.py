"""Does preprocessing scale? Cold build and warm reload of FakeNewsCorpus-shaped CSVs.

    uv run python benchmarks/data_scale.py --dir /big/disk/bench [--sizes 100000 300000 995000]

For each size it writes (once, reused later) a CSV shaped like FakeNewsCorpus's
`995,000_rows.csv` (the full corpus's type mix, ~4 KB multi-line articles, repeats;
smaller files are the first rows of larger ones), then measures in fresh processes:

- cold: `python -m tokentango.prepare` building the cache (wall time, rows/s, the build's
  own passes, peak memory from `/usr/bin/time -v`);
- warm: a process opening the built cache as a run does (seconds to open, peak memory);
- shared: `--jobs` processes at once, each opening the cache and reading every token id,
  as the jobs of a local sweep do: the cache's memory each maps, and in all (PSS, which
  divides pages shared by several processes among them).

Figures come from one machine, one after the other; the flatness of peak memory across
sizes is what to read.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tokentango.synthetic import FAKENEWS, write_corpus

TIME = "/usr/bin/time"

# Run in a fresh interpreter: open the cache a run would open and read every token id;
# then, once all `jobs` processes have (a barrier of marker files), report the cache's
# resident and proportional memory, and keep it mapped until every process has reported.
_OPEN = """
import json, os, re, sys, time
from pathlib import Path
started = time.perf_counter()
from tokentango.config import compose_config
from tokentango.data import load_dataset, settings_from_config
cfg = compose_config(json.loads(sys.argv[1]))
imported = time.perf_counter()
data = load_dataset(settings_from_config(cfg), cfg.runtime.data_dir)
opened = time.perf_counter()
assert data.from_cache
total = sum(int(s.ids.sum(dtype="int64")) for s in data.splits.values())
read = time.perf_counter()
barrier, jobs = Path(sys.argv[2]), int(sys.argv[3])

def wait_for(stage):
    (barrier / f"{os.getpid()}.{stage}").touch()
    while len(list(barrier.glob(f"*.{stage}"))) < jobs:
        time.sleep(0.05)

wait_for("read")
rss = pss = 0
inside = False
for line in open("/proc/self/smaps"):
    if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
        inside = str(data.cache_dir) in line
    elif inside and line.startswith(("Rss:", "Pss:")):
        kb = int(line.split()[1])
        rss, pss = (rss + kb, pss) if line.startswith("Rss:") else (rss, pss + kb)
wait_for("measured")
print(json.dumps({"open_s": opened - imported, "read_s": read - opened,
                  "cache_rss_kb": rss, "cache_pss_kb": pss}))
"""


def overrides(csv: Path, data_dir: Path, train_frac: float) -> list[str]:
    return [f"data.path='{csv}'", f"runtime.data_dir='{data_dir}'", f"train_frac={train_frac}"]


def timed(command: list[str]) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run under /usr/bin/time -v: (the process, wall seconds, peak resident MB)."""
    started = time.perf_counter()
    done = subprocess.run([TIME, "-v", *command], capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{done.stdout}\n{done.stderr}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
    return done, wall, peak_kb / 1024


def measure(csv: Path, work: Path, train_frac: float, jobs: int) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    args = overrides(csv, work, train_frac)
    _, cold_wall, cold_peak = timed([sys.executable, "-m", "tokentango.prepare", *args])
    meta = json.loads(next((work / "cache").glob("*/meta.json")).read_text())
    build_s = sum(meta["seconds"].values())
    with tempfile.TemporaryDirectory() as barrier:
        opened, _, warm_peak = timed([sys.executable, "-c", _OPEN, json.dumps(args), barrier, "1"])
    warm = json.loads(opened.stdout.splitlines()[-1])
    with tempfile.TemporaryDirectory() as barrier:
        command = [sys.executable, "-c", _OPEN, json.dumps(args), barrier, str(jobs)]
        processes = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
                     for _ in range(jobs)]  # fmt: skip
        shared = [json.loads(p.communicate()[0].splitlines()[-1]) for p in processes]
    return {
        "rows": meta["rows_read"], "csv_mb": csv.stat().st_size / 2**20,
        "kept": meta["balanced_rows"], "cold_s": cold_wall, "build_s": build_s,
        "passes": meta["seconds"], "rows_per_s": meta["rows_read"] / build_s,
        "cold_peak_mb": cold_peak, "warm_open_s": warm["open_s"], "warm_peak_mb": warm_peak,
        "cache_mb": sum(f.stat().st_size for f in next((work / "cache").glob("*/")).iterdir())
        / 2**20,
        "jobs": jobs, "job_open_s": max(s["open_s"] for s in shared),
        "job_cache_rss_mb": max(s["cache_rss_kb"] for s in shared) / 1024,
        "jobs_cache_pss_mb": sum(s["cache_pss_kb"] for s in shared) / 1024,
    }  # fmt: skip


def table(results: list[dict]) -> str:
    lines = [
        "| CSV rows | CSV | rows kept (balanced) | cold build | rows/s | peak memory, cold | "
        "warm open | peak memory, warm | cache | {jobs} jobs: cache in memory each / all |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        p = r["passes"]
        lines.append(
            f"| {r['rows']:,} | {r['csv_mb'] * 2**20 / 1e9:.2f} GB | {r['kept']:,} | "
            f"{r['cold_s']:.0f} s (read {p['read']:.0f}, tokenizer {p['tokenizer']:.0f}, "
            f"encode {p['encode']:.0f}) | {r['rows_per_s']:,.0f} | {r['cold_peak_mb']:,.0f} MB | "
            f"{r['warm_open_s']:.2f} s | {r['warm_peak_mb']:,.0f} MB | {r['cache_mb']:,.0f} MB | "
            f"{r['job_cache_rss_mb']:,.0f} / {r['jobs_cache_pss_mb']:,.0f} MB |"
        )
    return "\n".join(lines).replace("{jobs}", str(results[0]["jobs"]))


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True,
                        help="where the CSVs and caches go (several GB at full size)")  # fmt: skip
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 995_000])
    parser.add_argument("--train-frac", type=float, default=1.0)
    parser.add_argument("--jobs", type=int, default=9, help="processes sharing one cache")
    parser.add_argument("--workers", type=int, default=2, help="processes writing a CSV")
    args = parser.parse_args(argv)
    if not Path(TIME).is_file():
        sys.exit(f"{TIME} is missing (Debian: apt-get install time)")
    results = []
    for size in args.sizes:
        csv = args.dir / f"fakenews_{size}.csv"
        if not csv.exists():
            started = time.perf_counter()
            write_corpus(csv, size, FAKENEWS, workers=args.workers)
            print(f"wrote {csv} in {time.perf_counter() - started:.0f} s", flush=True)
        results.append(measure(csv, args.dir / f"work_{size}", args.train_frac, args.jobs))
        print(json.dumps(results[-1]), flush=True)
    print(f"\ntrain_frac={args.train_frac}\n{table(results)}")
    return results


if __name__ == "__main__":
    main()
