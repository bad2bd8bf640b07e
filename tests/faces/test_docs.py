"""The documentation runs: every fenced block of README.md and docs/*.md is run or checked, by its language
tag, and the reference pages agree with the code. docs/testing.md explains the mechanism to writers.

* ```bash / ```sh / ```shell: run with ``bash -e``; ```python: run with this interpreter; both in one
  temporary folder per page (``configs/`` and ``examples/`` linked in from the repository),
  in the page's order, so a later block uses the files an earlier one wrote. Before a block runs, the few
  rewrites of :data:`QUICK` shrink its step and sample counts; nothing else changes.
* ```toml: parsed by the library's loader (a config, or an experiment file); ```toml FILE also writes the
  block to FILE in the page's folder, for the blocks after it.
* ```text: shown, not run (output, file trees).

Any other tag (or none) fails. A block that names ``$VRNN_BENCHMARK_DATA`` needs the benchmark data
(../shared/data); without it, that block is skipped and the page's test reports the skip with the reason.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from conftest import SHARED_DATA

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL, PYTHON, TOML, SHOWN = {"bash", "sh", "shell"}, {"python"}, {"toml"}, {"text"}
LINKED = ("configs", "examples")  # what a page's folder sees of the repository
QUICK_STEPS, QUICK_EXPLICIT, QUICK_K = 3, 6, 4
# (what it matches, what it becomes, the rule as docs/testing.md states it): applied in this order
QUICK = [
    (re.compile(r"train\.max_steps=\d+"), f"train.max_steps={QUICK_EXPLICIT}",
     f"`train.max_steps=N` (shell or Python) becomes `train.max_steps={QUICK_EXPLICIT}`"),
    (re.compile(r"(--iw-samples|--particles) \d+"), rf"\1 {QUICK_K}",
     f"`--iw-samples N` and `--particles N` become {QUICK_K}"),
]
TRAINS = re.compile(r"(^|\s)(vrnn|-m vrnn) (train|experiment)\b")  # a command that trains


@dataclasses.dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    arg: str  # the rest of the info string: ```toml FILE
    text: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of ``page``, in order (a fence inside a list item counts too)."""
    found, lines, i = [], page.read_text().splitlines(), 0
    while i < len(lines):
        m = re.match(r"\s*```(\S*)\s*(.*)$", lines[i])
        if m:
            start, body = i, []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"{page.relative_to(REPO)}:{start + 1}: a code fence is never closed"
            found.append(Block(page, start + 1, m.group(1), m.group(2).strip(), "\n".join(body) + "\n"))
        i += 1
    return found


def _split_comment(line: str) -> tuple[str, str]:
    """``line`` as (command, trailing comment): the first `` #`` outside quotes starts the comment."""
    quote = None
    for i, c in enumerate(line):
        if c in "'\"" and quote in (None, c):
            quote = None if quote else c
        elif c == "#" and quote is None and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), "  " + line[i:]
    return line, ""


def quick_shell(text: str) -> str:
    """The block as the test runs it: continuation lines joined, :data:`QUICK` applied, and every command that
    trains (``vrnn train``, ``vrnn experiment`` without ``--eval-only``) and names no ``train.max_steps`` given
    ``--set train.max_steps=3``; ``make TARGET`` becomes a dry run in the repository, ``pip install`` a check."""
    out = []
    for line in text.replace("\\\n", " ").splitlines():
        command, comment = _split_comment(line)
        for pattern, repl, _ in QUICK:
            command = pattern.sub(repl, command)
        if TRAINS.search(command) and "train.max_steps=" not in command and "--eval-only" not in command:
            assert not re.search(r"&&|;|\|", command), f"one command per line where a run trains: {line!r}"
            background = command.endswith("&")
            command = command.rstrip("& ") + f" --set train.max_steps={QUICK_STEPS}" + (" &" if background else "")
        if re.match(r"\s*make\s", command):
            command = f"make -n -C {REPO} " + command.split(None, 1)[1]
        if re.match(r"\s*pip (install|wheel)\b", command):
            check_pip(command)
            command = ": checked, not run: " + command.replace("&&", "and")
        out.append(command + comment)
    return "\n".join(out) + "\n"


def quick_python(text: str) -> str:
    for pattern, repl, _ in QUICK:
        text = pattern.sub(repl, text)
    return text


def check_pip(command: str) -> None:
    """A ``pip install`` line names only extras pyproject.toml defines, and torch's index is pytorch.org's."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for group in re.findall(r"\[([\w,\s-]+)\]", command):
        unknown = {e.strip() for e in group.split(",")} - set(extras)
        assert not unknown, f"{command!r}: no extra {sorted(unknown)} in pyproject.toml ({sorted(extras)})"
    for url in re.findall(r"--index-url (\S+)", command):
        assert url.startswith("https://download.pytorch.org/whl/"), f"{command!r}: torch comes from pytorch.org"


def check_toml(block: Block, folder: Path) -> str:
    """Parse and load a TOML block as the library does: a config (``[model]``) or an experiment (``[runs]``)."""
    from vrnn.lab.experiments.spec import load_experiment
    from vrnn.training.config import load_config

    raw = tomllib.loads(block.text)
    path = folder / (block.arg or "block.toml")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(block.text)
    if "model" in raw:
        load_config(path)
        return "config"
    if "runs" in raw:
        load_experiment(path)
        return "experiment"
    raise AssertionError(f"{block.where}: a ```toml block is a config ([model]) or an experiment file ([runs])")


def needs_benchmark_data(block: Block) -> bool:
    return "VRNN_BENCHMARK_DATA" in block.text


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """One $VRNN_DATA_DIR for every page: a data set one page prepared is cached for the next."""
    return tmp_path_factory.mktemp("docs-data")


def page_env(data_dir: Path) -> dict:
    env = {**os.environ, "VRNN_DATA_DIR": str(data_dir), "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VRNN_BENCHMARK_DATA", None)
    if SHARED_DATA.is_dir():
        env["VRNN_BENCHMARK_DATA"] = str(SHARED_DATA)
    return env


def run_block(block: Block, folder: Path, env: dict, index: int) -> None:
    if block.lang in SHELL:
        cmd, script = ["bash", "-e", "-c", quick_shell(block.text)], None
    else:
        script = folder / f"block{index}.py"
        script.write_text(quick_python(block.text))
        cmd = [sys.executable, script.name]
    p = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, (f"{block.where}: ```{block.lang} block failed (exit {p.returncode}) as run:\n"
                               f"{cmd[-1] if script is None else script.read_text()}\n"
                               f"stdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}")


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(REPO)) for p in PAGES])
def test_every_block_of_the_page_runs(page, tmp_path, data_dir, capsys):
    folder = tmp_path / "page"
    folder.mkdir()
    for name in LINKED:
        (folder / name).symlink_to(REPO / name)
    env, counts, skipped, start = page_env(data_dir), {}, [], time.perf_counter()
    for i, block in enumerate(blocks(page)):
        if block.lang in SHOWN:
            kind = "shown"
        elif block.lang in TOML:
            kind = f"toml {check_toml(block, folder)} checked"
        elif block.lang in SHELL | PYTHON:
            if needs_benchmark_data(block) and "VRNN_BENCHMARK_DATA" not in env:
                skipped.append(block.where)
                continue
            run_block(block, folder, env, i)
            kind = "shell run" if block.lang in SHELL else "python run"
        else:
            raise AssertionError(f"{block.where}: unknown code block language {block.lang!r}; use one of "
                                 f"{sorted(SHELL | PYTHON | TOML | SHOWN)}")
        counts[kind] = counts.get(kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "no blocks"
    with capsys.disabled():
        print(f"\n{page.relative_to(REPO)}: {summary}; {len(skipped)} skipped "
              f"({time.perf_counter() - start:.0f} s)", end="")
    if skipped:
        pytest.skip(f"ran {summary}; skipped {len(skipped)} block(s) that need the benchmark data "
                    f"({', '.join(skipped)}): {SHARED_DATA} is absent")


def test_every_block_has_a_known_language_and_no_command_hides_in_an_indented_block(capsys):
    known = SHELL | PYTHON | TOML | SHOWN
    found = [b for page in PAGES for b in blocks(page)]
    assert len(found) > 30, "the pages lost their examples"
    tags = {lang: sum(b.lang == lang for b in found) for lang in sorted({b.lang for b in found})}
    with capsys.disabled():
        print(f"\n{len(PAGES)} pages, {len(found)} code blocks: " + ", ".join(f"{n} {t}" for t, n in tags.items()), end="")
    unknown = [f"{b.where}: {b.lang or '(none)'}" for b in found if b.lang not in known]
    assert not unknown, f"code blocks need one of the tags {sorted(known)}: {unknown}"
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        indented = re.findall(r"\n\n {4}((?:vrnn|python|torchrun|pip|make) .*)", text)
        assert not indented, f"{page.relative_to(REPO)}: fence these commands as ```bash blocks: {indented}"


def _gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("page", ["commands.md", "presets.md"])
def test_the_generated_reference_pages_are_current(page):
    """docs/commands.md is the parser's (every command, option, help and default), docs/presets.md the configs':
    a new command, option or preset shows up by running ``python scripts/gen_docs.py``."""
    gen = _gen_docs()
    path = REPO / "docs" / page
    assert path.read_text() == gen.PAGES[path](), f"docs/{page} is out of date: run python scripts/gen_docs.py"


def test_the_command_reference_names_every_command_and_option():
    from vrnn.cli import build_parser

    text = (REPO / "docs" / "commands.md").read_text()
    parser = build_parser()
    [sub] = [a for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict)]
    for name, command in sub.choices.items():
        section = text.split(f"\n## vrnn {name}\n", 1)[1].split("\n## ", 1)[0]
        for action in command._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in section, f"vrnn {name} {option} is missing from docs/commands.md"


def _settings_table() -> dict[str, str]:
    """docs/settings.md's table: each setting it names -> its row."""
    text = (REPO / "docs" / "settings.md").read_text()
    table = text.split("| setting | meaning |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for row in table.splitlines()[2:]:
        first = row.split("|")[1]
        for name in re.findall(r"`((?:model|data|train)\.[\w.]+)`", first):
            rows[name] = row
    return rows


def _settings() -> dict[str, object]:
    """Every setting of a config: ``section.key`` -> its Check (or None), over every model kind's config."""
    from vrnn.data import DataConfig
    from vrnn.emissions import EmissionConfig
    from vrnn.models import MODELS
    from vrnn.training.options import TrainConfig

    found = {}
    classes = [("model", m.config_class) for m in MODELS.values()] + [
        ("model.emission", EmissionConfig), ("data", DataConfig), ("train", TrainConfig)]
    for prefix, cls in classes:
        for f in dataclasses.fields(cls):
            if f.name != "emission":
                found[f"{prefix}.{f.name}"] = cls.CHECKS.get(f.name)
        for key, check in cls.CHECKS.items():
            if "." in key:  # a check on a nested setting, e.g. ModelConfig's "emission.name"
                found[f"{prefix}.{key}"] = check
    return found


def test_the_settings_reference_names_every_setting_and_every_value_it_takes():
    """docs/settings.md's table against the dataclasses: every setting of every model kind, output, [data] and
    [train] is in it, nothing else is, and each value a setting is checked to be ``one of`` is in its row."""
    rows, settings = _settings_table(), _settings()
    assert not sorted(set(settings) - set(rows)), f"settings missing from docs/settings.md: {sorted(set(settings) - set(rows))}"
    assert not sorted(set(rows) - set(settings)), f"docs/settings.md names no such settings: {sorted(set(rows) - set(settings))}"
    for name, check in settings.items():
        need = getattr(check, "need", "")
        if need.startswith("one of "):
            missing = [v for v in need[len("one of "):].split(", ") if f"`{v}`" not in rows[name]]
            assert not missing, f"docs/settings.md: the row of {name} does not name {missing}"


def test_the_readme_results_are_copied_from_the_results_files():
    """Every number of the README's results table is in the RESULTS.md (or SPEED.md) its row links to."""
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Results", 1)[1].split("\n## ", 1)[0]
    rows = [r for r in table.splitlines() if r.startswith("| ") and "](benchmarks/" in r]
    assert len(rows) >= 5
    for row in rows:
        [link] = re.findall(r"\]\((benchmarks/[^)]+\.md)\)", row)
        source = (REPO / link).read_text()
        for number in re.findall(r"[-+]?\d+\.\d+", row.split("](benchmarks/")[0]):
            assert number in source, f"README results: {number} is not in {link}"


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a markdown page."""
    heads = re.findall(r"^#+ (.+)$", re.sub(r"```.*?```", "", page.read_text(), flags=re.S), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in heads}


def test_every_link_between_the_pages_resolves():
    for page in PAGES:
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+://", target):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            assert resolved.exists(), f"{page.relative_to(REPO)}: the link {target} points nowhere"
            if anchor and resolved.suffix == ".md":
                assert anchor in _anchors(resolved), f"{page.relative_to(REPO)}: no heading #{anchor} in {path or page.name}"


def test_the_readme_stays_short_and_opens_with_its_contents():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail to docs/"
    assert "## Contents" in "\n".join(lines[:40])


def test_docs_testing_states_the_rewrites_the_test_makes():
    text = (REPO / "docs" / "testing.md").read_text()
    for _, _, rule in QUICK:
        assert rule in text, f"docs/testing.md must state the rewrite: {rule}"
    assert f"--set train.max_steps={QUICK_STEPS}" in text and "make -n" in text and "VRNN_BENCHMARK_DATA" in text
