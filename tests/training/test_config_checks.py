"""Every setting is checked when a config is built, and ``--resume`` continues the stored run.

A bad value is one error line (exit status 2) naming the file, the setting and the values it takes;
an empty or section-less file is refused; a resumed run refuses changed settings (other than when
it stops) unless ``--allow-changes``, and then logs them.
"""
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from vrnn.cli import main
from vrnn.training.config import Config, DataConfig, EmissionConfig, TrainConfig, load_config
from vrnn.errors import VrnnError
from vrnn.models import MODELS

from conftest import write_arrays

ROOT = Path(__file__).resolve().parents[2]

TINY = ["--set", "model.hidden=16", "--set", "model.width=16", "--set", "model.layers=1", "--set", "model.z_dim=2",
        "--set", "train.max_steps=2", "--set", "train.eval_every=1", "--quiet"]


def run(capsys, *argv):
    """``vrnn ARGV`` in this process: (exit status, stderr lines)."""
    code = main([str(a) for a in argv])
    return code, [line for line in capsys.readouterr().err.splitlines() if line]


def assert_one_line_error(code, err, *needles):
    assert code == 2 and len(err) == 1 and err[0].startswith("vrnn: error:"), err
    for n in needles:
        assert n in err[0], f"{n!r} not in {err[0]!r}"


VRNN, RNN, SRNN, DMM = "vrnn-gauss", "rnn-gauss", "srnn-polyphonic", "dmm-bernoulli"
BAD = [  # (config, --set, the setting the error names)
    *[(VRNN, f"train.{s}", f"train.{s.split('=')[0]}") for s in (
        "batch_size=0", "batch_size=-5", "lr=-1", "lr=0", "lr=nan", "lr=inf", "eval_every=0", "max_steps=0",
        "patience=0", "clip_norm=-1", "kl_start=1.5", "kl_start=-0.1", "kl_warmup_steps=-1", "lr_decay_start=-1",
        "lr_half_life=-2", "ema=1", "ema=-0.1", "max_minutes=-1", "eval_batch_size=0", "length_pool=0",
        "tbptt_steps=-1", "seed=-1", "device=gpu", "device='cuda:x'")],
    *[(VRNN, f"model.{s}", f"model.{s.split('=')[0]}") for s in (
        "hidden=0", "z_dim=0", "width=0", "layers=0", "x_dim=-1", "prior=learned", "rnn=rnn", "min_scale=0",
        "emission.name=poisson", "emission.components=0", "emission.min_scale=0", "emission.min_scale=-1")],
    *[(RNN, f"model.{s}", f"model.{s.split('=')[0]}") for s in ("hidden=0", "layers=-1", "rnn=transformer")],
    *[(SRNN, f"model.{s}", f"model.{s.split('=')[0]}") for s in (
        "a_hidden=0", "embed_layers=-1", "dropout=1", "input_dropout=-0.1", "activation=gelu", "posterior=both",
        "min_scale=-1")],
    *[(DMM, f"model.{s}", f"model.{s.split('=')[0]}") for s in (
        "rnn_hidden=0", "transition_hidden=0", "emission_hidden=0", "emission_layers=0", "z_dim=0",
        "rnn=transformer", "posterior=both")],
    *[(VRNN, f"data.{s}", f"data.{s.split('=')[0]}") for s in (
        "normalize=minmax", "format=csv", "source=''", "source='  '")],
]


@pytest.mark.parametrize("config,setting,field", BAD, ids=[f"{c}:{s}" for c, s, _ in BAD])
def test_a_bad_value_is_one_line_naming_the_file_and_the_setting(tmp_path, capsys, config, setting, field):
    code, err = run(capsys, "train", "--config", f"configs/{config}.toml", "--set", setting,
                    "--out", tmp_path / "run", "--quiet")
    assert_one_line_error(code, err, f"configs/{config}.toml", field, "set it to")
    assert not (tmp_path / "run").exists()  # refused before anything was read or written


def test_boundary_values_are_accepted():
    ok = ["train.ema=0", "train.kl_start=0", "train.clip_norm=0", "train.kl_warmup_steps=0", "train.tbptt_steps=0",
          "train.max_minutes=0", "train.lr_half_life=0", "train.length_pool=1", "train.device='cuda:1'",
          "train.batch_size=1", "model.x_dim=0", "data.normalize=per_feature", "data.format=stroke3"]
    cfg = load_config("configs/vrnn-gauss.toml", ok)
    assert (cfg.train.ema, cfg.train.device, cfg.data.normalize) == (0.0, "cuda:1", "per_feature")
    cfg = load_config("configs/srnn-polyphonic.toml", ["model.embed_layers=0", "model.dropout=0.0",
                                                       "model.input_dropout=0.99", "train.kl_start=1"])
    assert cfg.model.input_dropout == 0.99
    for device in ("auto", "cpu", "cuda", "cuda:0", "mps"):
        assert load_config("configs/rnn-gauss.toml", [f"train.device={device}"]).train.device == device


def test_every_setting_has_a_check():
    """The tables are complete: a field without a range or a set of names is a bool, the model kind
    (checked before the kind's config is chosen) or a nested table (checked by its own class)."""
    classes = [TrainConfig, DataConfig, EmissionConfig, *(m.config_class for m in MODELS.values())]
    for cls in classes:
        checked = set(cls.CHECKS) | {"name"} if cls is EmissionConfig else set(cls.CHECKS)  # name: model.emission.name
        free = {f.name for f in dataclasses.fields(cls) if isinstance(f.default, bool)} | {"kind", "emission"}
        assert {f.name for f in dataclasses.fields(cls)} - free <= checked, cls.__name__
    assert "emission.name" in MODELS["vrnn"].config_class.CHECKS


@pytest.mark.parametrize("text,needle", [
    ("", "no [model] table"),
    ("# only a comment\n", "no [model] table"),
    ("[train]\nlr = 1e-3\n", "no [model] table"),
    ("[data]\nsource = 'chorales'\n[train]\nmax_steps = 5\n", "no [model] table"),
    ("[model]\nhidden = 16\n", "no model.kind"),
    ("lr = 1e-3\n", "unknown section"),
])
def test_an_empty_or_section_less_config_is_refused(tmp_path, capsys, text, needle):
    path = tmp_path / "c.toml"
    path.write_text(text)
    code, err = run(capsys, "train", "--config", path, "--out", tmp_path / "run", "--quiet")
    assert_one_line_error(code, err, "c.toml", needle)
    if needle != "unknown section":
        assert_one_line_error(code, err, "[model]", "kind", "configs/", "[data] and [train] may be left out")
    assert not (tmp_path / "run").exists()


def test_a_model_table_alone_is_a_config(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[model]\nkind = 'rnn'\n")
    cfg = load_config(path)
    assert (cfg.model.kind, cfg.data, cfg.train) == ("rnn", DataConfig(), TrainConfig())


def test_a_checkpoint_with_a_bad_stored_value_is_refused_by_name(tmp_path, capsys):
    data = write_arrays(tmp_path / "d.npz", dim=5, binary=True)
    out = tmp_path / "run"
    assert run(capsys, "train", "--config", "configs/vrnn-bernoulli.toml", "--set", f"data.source={data}",
               "--out", out, *TINY)[0] == 0
    ckpt = torch.load(out / "best.pt", weights_only=True)
    ckpt["config"]["model"]["hidden"] = 0
    torch.save(ckpt, tmp_path / "edited.pt")
    code, err = run(capsys, "eval", tmp_path / "edited.pt")
    assert_one_line_error(code, err, "edited.pt", "model.hidden")


# ---- --resume -------------------------------------------------------------------------------------------------


@pytest.fixture
def stopped_run(tmp_path, capsys):
    """A tiny VRNN run stopped after 2 steps, trained with --set train.lr=3e-4 (docs/training.md's first command)."""
    data = write_arrays(tmp_path / "d.npz", dim=5, binary=True)
    out = tmp_path / "run"
    first = ["--config", "configs/vrnn-bernoulli.toml", "--set", f"data.source={data}", *TINY]
    assert run(capsys, "train", *first, "--set", "train.lr=3e-4", "--out", out)[0] == 0
    return out, first


def _log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_resume_refuses_a_changed_setting_and_lists_it(stopped_run, capsys):
    out, first = stopped_run
    before = (out / "last.pt").read_bytes(), (out / "log.jsonl").read_text()
    # the README's old resume example: the same file without the first run's --set train.lr=3e-4
    code, err = run(capsys, "train", *first, "--set", "train.max_steps=3", "--set", "model.emission.min_scale=0.01",
                    "--out", out, "--resume")
    assert_one_line_error(code, err, "last.pt", "train.lr: 0.0003 (stored) -> 0.003 (given)",
                          "model.emission.min_scale: 0.001 (stored) -> 0.01 (given)", "--allow-changes")
    assert "train.max_steps:" not in err[0]  # a stopping rule is no difference
    code, err = run(capsys, "train", "--out", out, "--resume", "--set", "train.batch_size=4", "--quiet")
    assert_one_line_error(code, err, "train.batch_size: 32 (stored) -> 4 (given)")
    assert ((out / "last.pt").read_bytes(), (out / "log.jsonl").read_text()) == before


def test_resume_with_allow_changes_continues_with_the_new_settings_and_logs_them(stopped_run, capsys):
    out, first = stopped_run
    code, err = run(capsys, "train", *first, "--set", "train.max_steps=4", "--out", out, "--resume", "--allow-changes")
    assert code == 0, err
    log = _log(out)
    assert [r["step"] for r in log] == [1, 2, 2, 3, 4]
    assert log[2] == {"step": 2, "config_changes": {"train.lr": {"stored": 3e-4, "given": 3e-3}}}
    assert [r["lr"] for r in log if "lr" in r] == [3e-4, 3e-4, 3e-3, 3e-3]
    assert torch.load(out / "last.pt", weights_only=True)["config"]["train"]["lr"] == 3e-3


def test_resume_may_change_when_the_run_stops(stopped_run, capsys):
    out, first = stopped_run
    code, err = run(capsys, "train", "--out", out, "--resume", "--set", "train.max_steps=3", "--set",
                    "train.patience=50", "--set", "train.max_minutes=30", "--quiet")
    assert code == 0, err
    code, err = run(capsys, "train", *first, "--set", "train.lr=3e-4", "--set", "train.max_steps=4", "--out", out,
                    "--resume")
    assert code == 0, err
    assert [r["step"] for r in _log(out)] == [1, 2, 3, 4]  # no change recorded
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 4


def test_allowed_model_changes_must_keep_the_weights_shapes(stopped_run, capsys):
    out, _ = stopped_run
    before = (out / "log.jsonl").read_text()
    code, err = run(capsys, "train", "--out", out, "--resume", "--allow-changes", "--set", "model.hidden=17",
                    "--quiet")
    assert_one_line_error(code, err, "last.pt", "do not fit the changed [model]", "stored", "now")
    assert (out / "log.jsonl").read_text() == before
    code, err = run(capsys, "train", "--out", out, "--allow-changes", "--set", "train.lr=1e-2", "--quiet")
    assert_one_line_error(code, err, "--allow-changes", "--resume")


def test_a_config_built_in_python_is_checked_too():
    with pytest.raises(VrnnError, match=r"config: train\.batch_size is 0"):
        Config(train=TrainConfig(batch_size=0))
    cfg = load_config("configs/rnn-gauss.toml")
    with pytest.raises(VrnnError, match=r"model\.hidden is 0"):
        cfg.replace(model=dataclasses.replace(cfg.model, hidden=0))


SHIPPED = sorted(p.relative_to(ROOT).as_posix() for p in [*(ROOT / "configs").rglob("*.toml"),
                                                          *(ROOT / "examples").glob("*.toml")])


def test_the_shipped_config_list_is_not_empty():
    assert len(SHIPPED) > 30 and "examples/storn.toml" in SHIPPED


@pytest.mark.parametrize("path", SHIPPED)
def test_every_shipped_config_loads_builds_and_runs_a_step(path, monkeypatch):
    """Each file under configs/ and examples/ is read and checked, and its model built and run on a tiny
    batch of data of its emission's kind: a finite ELBO and a gradient for every parameter."""
    import torch

    from vrnn.models import build_model

    monkeypatch.chdir(ROOT)  # examples' model kinds import from the repository root
    cfg = load_config(path)
    emission = cfg.model.emission.name
    x_dim = {"strokes": 3, "bernoulli": 6, "nade": 6}.get(emission, 4)
    torch.manual_seed(0)
    model = build_model(dataclasses.replace(cfg.model, x_dim=x_dim))
    x = torch.randn(2, 3, x_dim)
    if emission in ("bernoulli", "nade"):
        x = (x > 0).float()
    elif emission == "strokes":
        x[..., 2] = (x[..., 2] > 1).float()
    terms = model(x)
    elbo = (terms.log_px - terms.kl).sum()
    assert torch.isfinite(elbo)
    elbo.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_a_bare_name_is_a_shipped_preset_and_a_path_still_works(tmp_path, monkeypatch, capsys):
    """--config srnn-polyphonic (no suffix, no such file) reads the preset shipped with the package: the
    repository's configs/ here, vrnn/presets/ in a wheel (tests/faces/test_install.py)."""
    from vrnn.training.config import preset_names

    repo = Path(__file__).resolve().parents[2]
    assert preset_names() == sorted(p.relative_to(repo / "configs").with_suffix("").as_posix()
                                    for p in (repo / "configs").rglob("*.toml"))
    monkeypatch.chdir(tmp_path)  # not the checkout: a relative configs/ path would not be found here
    for name in ("srnn-polyphonic", "speech/small/srnn", "demo/vrnn"):
        assert load_config(name, ["train.lr=1e-4"]) == load_config(repo / "configs" / f"{name}.toml", ["train.lr=1e-4"])
    (tmp_path / "srnn-polyphonic").write_text("[model]\nkind = 'rnn'\n")  # an existing file wins over a preset
    assert load_config("srnn-polyphonic").model.kind == "rnn"
    code, err = run(capsys, "train", "--config", "srnn-polyphnic", "--out", "r")
    assert_one_line_error(code, err, "--config srnn-polyphnic", "did you mean srnn-polyphonic?", "vrnn-bernoulli")
