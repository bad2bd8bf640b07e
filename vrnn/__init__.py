"""vrnn: variational recurrent neural networks and their family, in PyTorch.

Python API (mirrors the CLI)::

    import vrnn
    cfg = vrnn.load_config("configs/vrnn-bernoulli.toml", ["train.max_steps=500"])
    result = vrnn.fit(cfg, "runs/vrnn")                     # vrnn train
    report = vrnn.evaluate_checkpoint("runs/vrnn/best.pt")  # vrnn eval
    x = vrnn.sample(result.model, steps=64)                 # vrnn sample
"""
from .api import evaluate_checkpoint, sample_checkpoint
from .checkpoint import load_model
from .data import SequenceData
from .errors import VrnnError
from .inference.evaluate import evaluate
from .inference.sampling import sample
from .inference.smc import particle_filter
from .models import MODELS, SequenceModel, Step, build_model
from .training.config import Config, load_config
from .training.trainer import fit

__all__ = [
    "Config", "MODELS", "SequenceData", "SequenceModel", "Step", "VrnnError", "build_model", "evaluate",
    "evaluate_checkpoint", "fit", "load_config", "load_model", "particle_filter", "sample", "sample_checkpoint",
]
__version__ = "0.1.0"
