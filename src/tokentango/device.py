"""Where and how fast a run computes: device, precision (autocast), threads, start-up."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import re
from pathlib import Path

import torch

from tokentango.config import ConfigError


def resolve_device(name: str) -> torch.device:
    """auto | cpu | cuda[:N] as a torch device; ConfigError for anything else or absent."""
    name = str(name)
    if name not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", name):
        raise ConfigError(f"invalid config value device={name!r}: use auto, cpu or cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"invalid config value device={name!r}: no CUDA device is available")
    return torch.device(name)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast when asked for; fp32 runs without autocast."""
    if str(precision) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_threads(threads: int | None) -> None:
    """torch's intra-op threads for this process (null: leave PyTorch's default)."""
    if threads is not None:
        torch.set_num_threads(threads)


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of handing it back to the kernel.

    Each training step allocates and frees the same activations; at news length they are
    tens of MB (model=original: 32 x 300 x 2048 floats = 79 MB per feed-forward layer).
    glibc serves blocks that large with a fresh mmap each time and unmaps them on free, so
    every step page-faults all of its activations in again: measured, that was about half
    of a step at model=original on CPU. Raising the mmap and trim thresholds lets the heap
    reuse them (what PyTorch's CUDA caching allocator does on a GPU). Memory freed after
    the peak stays with the process, and batches of varying shape fragment the heap a
    little (measured: peak 1.57 -> 1.73 GB for a default run). Returns whether it applied
    (glibc only; elsewhere a no-op)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(
        libc.mallopt(m_trim_threshold, (1 << 31) - 1)
    )


def seconds_since_launch() -> float | None:
    """Seconds since this process started (interpreter start-up and imports included), from
    /proc; None where there is no /proc."""
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return None
    started_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22: starttime
    return uptime - started_ticks / os.sysconf("SC_CLK_TCK")
