"""The measured configurations, and the models and synthetic batches they describe."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ...emissions import EmissionConfig
from ...models import MODELS, build_model


@dataclass(frozen=True)
class BenchConfig:
    model: dict  # fields of the model's config class
    batch: int
    steps: int  # sequence length T
    note: str = ""
    reference: bool = True  # a per-step reference exists (VRNN family)


CONFIGS: dict[str, BenchConfig] = {
    "small": BenchConfig(dict(kind="vrnn", x_dim=200, hidden=256, width=256, layers=4, z_dim=64,
                              emission=EmissionConfig("gauss")), batch=32, steps=40,
                         note="x 200, LSTM 256, 4-layer MLPs of 256, z 64, Gaussian output, B 32, T 40"),
    "paper": BenchConfig(dict(kind="vrnn", x_dim=200, hidden=2000, width=600, layers=4, z_dim=200,
                              emission=EmissionConfig("gauss")), batch=64, steps=40,
                         note="x 200, LSTM 2000, 4-layer MLPs of 600, z 200, Gaussian output, B 64, T 40"),
    # the SRNN paper's polyphonic settings (the model's defaults); no per-step reference
    "srnn-polyphonic": BenchConfig(dict(kind="srnn", x_dim=88, emission=EmissionConfig("bernoulli")),
                                   batch=16, steps=100, reference=False,
                                   note="SRNN smooth + Res_q, GRU 300, z 100, 1-layer nets of 500, "
                                        "Bernoulli output (88 keys), B 16, T 100"),
}

# the whole-test-set evaluation of `vrnn bench --jsb`: a VRNN of configs/vrnn-bernoulli.toml's size
JSB_EVAL = BenchConfig(dict(kind="vrnn", x_dim=88, hidden=256, width=256, layers=4, z_dim=32,
                            emission=EmissionConfig("bernoulli")), batch=64, steps=0,
                       note="VRNN-Bernoulli, LSTM 256, 4-layer MLPs of 256, z 32; "
                            "eval batch 64 sequences (each tiled K times)")


def make_model(bc: BenchConfig, device, seed: int = 0):
    cls = MODELS[bc.model["kind"]].config_class
    torch.manual_seed(seed)
    return build_model(cls(**bc.model)).to(device)


def make_batches(bc: BenchConfig, device, n: int = 4, steps: int | None = None, seed: int = 0) -> list[torch.Tensor]:
    """Synthetic data of the configured shape: standard normal, or binary for Bernoulli outputs."""
    g = torch.Generator().manual_seed(seed)
    shape = (bc.batch, steps or bc.steps, bc.model["x_dim"])  # (B, T, D)
    binary = bc.model["emission"].name == "bernoulli"
    out = []
    for _ in range(n):
        x = (torch.rand(shape, generator=g) < 0.1).float() if binary else torch.randn(shape, generator=g)
        out.append(x.to(device))
    return out
