"""Which device a command runs on."""
from __future__ import annotations

import torch

from .errors import VrnnError


def resolve_device(name: str, setting: str = "train.device") -> torch.device:
    """``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; ``setting`` names the
    option in the error message."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise VrnnError(f"{setting}={name!r} but no CUDA device is available; use {setting}=cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise VrnnError(f"unknown {setting} {name!r}; use auto, cpu or cuda[:N]") from None
