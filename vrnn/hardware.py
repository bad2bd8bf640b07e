"""The machine a result was measured on, for results tables and JSON records."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def hardware(device="cpu") -> dict:
    """Python and torch versions, torch's threads, the CPU (its model name from /proc/cpuinfo where
    there is one) and its logical cores, and the GPU when ``device`` is a CUDA device."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "cpu": platform.processor() or platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def describe_hardware(device="cpu") -> str:
    """One line for a results table: CPU, cores, torch and its threads (and the GPU, if used)."""
    h = hardware(device)
    text = f"{h['cpu']}, {h['cpu_count']} logical CPUs, torch {h['torch']} ({h['threads']} threads)"
    return text + (f", GPU {h['gpu']}" if "gpu" in h else "")
