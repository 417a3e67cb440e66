"""Where and how fast a run computes: device, precision (autocast), threads, start-up."""

from __future__ import annotations

import contextlib
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
