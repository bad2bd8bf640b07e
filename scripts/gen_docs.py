"""Write the generated reference pages: docs/commands.md from the command line's parser and
docs/presets.md from the shipped configs.

docs/commands.md: every command of ``vrnn.cli.build_parser()``, its usage, description and every option
with its help and default, in the order ``vrnn --help`` lists them. docs/presets.md: every file of
``configs/`` as the config loader reads it (model, sizes, output, data). Run it after adding or changing
a command, an option or a preset; ``tests/faces/test_docs.py`` fails while a page differs from what this
writes.

    python scripts/gen_docs.py           # rewrite both pages
    python scripts/gen_docs.py --check   # exit 1 if either is out of date
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vrnn.cli import build_parser  # noqa: E402
from vrnn.training.config import config_path, load_config, preset_names, presets_folder  # noqa: E402

HEADER = """# Command reference

Generated from the command line's parser by `python scripts/gen_docs.py`: do not edit by hand (a test
fails when this file differs from what the script writes). `vrnn COMMAND --help` prints the same.
What the commands are for, with examples: [README](../README.md) and the pages of [docs/](README.md).
"""


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub


def _usage(parser: argparse.ArgumentParser) -> str:
    fmt = argparse.HelpFormatter(parser.prog, width=10_000)  # one line, whatever the terminal
    fmt.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return fmt.format_help().strip()


def _names(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`" + (" (one or more)" if action.nargs == "+" else "")
    if action.nargs == 0:
        return ", ".join(f"`{o}`" for o in action.option_strings)
    metavar = action.metavar or ("{" + ",".join(action.choices) + "}" if action.choices else action.dest.upper())
    return ", ".join(f"`{o} {metavar}`" for o in action.option_strings)


def _option(action: argparse.Action, prog: str) -> str:
    """One bullet: the option's names, its help (``%(default)s`` expanded as argparse does), its choices
    and its default (none shown for flags and options without one)."""
    help_text = (action.help or "") % {**vars(action), "prog": prog}
    notes = []
    if action.choices and action.option_strings:
        notes.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    if action.required and action.option_strings:
        notes.append("required")
    if not (action.default is None or action.default is False or action.default == [] or action.nargs == 0
            or action.default is argparse.SUPPRESS):  # as `--help` shows them (vrnn.cli.HelpFormatter)
        notes.append(f"default `{action.default}`")
    tail = f" ({'; '.join(notes)})" if notes else ""
    return f"- {_names(action)}" + (f": {help_text}" if help_text else "") + tail


def _command(name: str, parser: argparse.ArgumentParser, summary: str) -> list[str]:
    lines = [f"## vrnn {name}", "", parser.description or summary[:1].upper() + summary[1:] + ".", ""]
    lines += ["```text", _usage(parser), "```", ""]
    actions = [a for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    positional = [a for a in actions if not a.option_strings]
    options = [a for a in actions if a.option_strings]
    if positional:
        lines += ["Arguments:", ""] + [_option(a, parser.prog) for a in positional] + [""]
    if options:
        lines += ["Options:", ""] + [_option(a, parser.prog) for a in options] + [""]
    return lines


def render_commands() -> str:
    """docs/commands.md as the parser describes the command line now."""
    parser = build_parser()
    sub = _subparsers(parser)
    summaries = {a.dest: a.help for a in sub._choices_actions}
    lines = [HEADER, f"{parser.description}", "", "```text", _usage(parser), "```", ""]
    lines += ["| command | what it does |", "| --- | --- |"]
    lines += [f"| [`vrnn {name}`](#vrnn-{name}) | {summaries[name].replace('|', chr(92) + '|')} |" for name in sub.choices]
    lines += ["", "Options of `vrnn` itself: " + ", ".join(
        f"`{a.option_strings[-1]}` ({a.help})" for a in parser._actions if a.option_strings), ""]
    for name, command in sub.choices.items():
        lines += _command(name, command, summaries[name])
    return "\n".join(lines).rstrip() + "\n"


PRESETS_HEADER = """# Presets

Generated from `configs/` by `python scripts/gen_docs.py`: do not edit by hand. Every file ships inside
the package: `--config NAME` takes `configs/NAME.toml` (e.g. `--config speech/small/srnn`). Each file's
comments say what it is for and where its schedule comes from; [settings](settings.md) says what every
setting means. Sizes: the recurrent state, the latent z_t and the networks (layers × units).
"""


def _label(m) -> str:
    if m.kind == "vrnn":
        return "VRNN-I" if m.prior == "independent" else "VRNN"
    if m.kind in ("srnn", "dmm"):
        return f"{m.kind.upper()} ({m.posterior}{' + Res_q' if getattr(m, 'res_q', False) else ''})"
    return m.kind.upper()


def _sizes(m) -> str:
    if m.kind in ("rnn", "vrnn"):
        z = f", z {m.z_dim}" if m.kind == "vrnn" else ""
        return f"{m.rnn.upper()} {m.hidden}{z}, {m.layers} × {m.width} per MLP"
    if m.kind == "srnn":
        embed = f", input embedding {m.embed_layers} × {m.width}" if m.embed_layers else ""
        return f"GRU {m.hidden}, a_t {m.a_hidden}, z {m.z_dim}, {m.layers} × {m.width} per net{embed}"
    if m.kind == "dmm":
        return (f"z {m.z_dim}, transition {m.transition_hidden}, emission {m.emission_layers} × {m.emission_hidden}, "
                f"{m.rnn.upper()} {m.rnn_hidden} (inference)")
    return ", ".join(f"{k} {v}" for k, v in vars(m).items() if k not in ("kind", "x_dim", "emission"))


def _output(e) -> str:
    mixtures = ("gmm", "strokes", "ar-gmm", "dlogistic")  # the outputs that read emission.components
    return f"{e.name} (K = {e.components})" if e.name in mixtures else e.name


def render_presets() -> str:
    """docs/presets.md: one row per shipped config, as the config loader reads it."""
    lines = [PRESETS_HEADER, "| preset | model | sizes | output | data.source |", "| --- | --- | --- | --- | --- |"]
    for name in preset_names():
        cfg = load_config(name)
        link = f"../configs/{config_path(name).relative_to(presets_folder()).as_posix()}"
        lines.append(f"| [`{name}`]({link}) | {_label(cfg.model)} | {_sizes(cfg.model)} | "
                     f"{_output(cfg.model.emission)} | `{cfg.data.source}` |")
    return "\n".join(lines) + "\n"


PAGES = {ROOT / "docs" / "commands.md": render_commands, ROOT / "docs" / "presets.md": render_presets}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated page is out of date")
    args = ap.parse_args()
    stale = []
    for path, render in PAGES.items():
        text = render()
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"{path.relative_to(ROOT)} is out of date; run python scripts/gen_docs.py", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
