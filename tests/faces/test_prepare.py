"""`vrnn prepare` shows how far its recipe has got (a bar on a terminal, a line per tenth otherwise) and says
whether it built the data set or reused the cached one; called from Python, a recipe prints nothing."""
from __future__ import annotations

import io
import re

import pytest

from conftest import write_midi_folder
from vrnn.cli import main
from vrnn.data.progress import showing, tracked
from vrnn.data.recipes import prepare


@pytest.fixture
def music(tmp_path, monkeypatch):
    """12 MIDI files, and an empty prepared-data folder."""
    monkeypatch.setenv("VRNN_DATA_DIR", str(tmp_path / "data"))
    write_midi_folder(tmp_path / "music", 12)
    return tmp_path


def test_off_a_terminal_progress_is_a_line_per_tenth_and_the_last_says_all(music, capsys):
    assert main(["prepare", "midi", "--source", str(music / "music"), "--as", "mine"]) == 0
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert lines[0] == "midi: reading files: 12 files"
    done = [int(m.group(1)) for line in lines[1:] if (m := re.match(r"midi: reading files: (\d+)/12 files", line))]
    assert len(done) == len(lines) - 1 <= 10 and done == sorted(done) and done[-1] == 12
    assert "100 %" in lines[-1]
    assert out.strip().endswith(f"saved to {music / 'data' / 'mine.npz'}") and "reused" not in out


def test_a_cached_data_set_is_reported_as_reused_not_saved(music, capsys):
    assert main(["prepare", "midi", "--source", str(music / "music"), "--as", "mine"]) == 0
    before = (music / "data" / "mine.npz").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["prepare", "midi", "--source", str(music / "music"), "--as", "mine"]) == 0
    out, err = capsys.readouterr()
    assert f"already prepared at {music / 'data' / 'mine.npz'} (reused)" in out and "saved to" not in out
    assert err == "" and (music / "data" / "mine.npz").stat().st_mtime_ns == before  # nothing read or rebuilt
    assert main(["prepare", "midi", "--source", str(music / "music"), "--as", "mine", "--overwrite"]) == 0
    out, err = capsys.readouterr()
    assert "saved to" in out and "reused" not in out and "12/12" in err


def test_a_recipe_called_from_python_prints_nothing(music, capsys):
    prepare("midi", source=str(music / "music"), save_as="quiet")
    assert capsys.readouterr() == ("", "")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_progress_is_a_bar_that_ends_at_the_total():
    stream = Terminal()
    with showing(stream):
        assert list(tracked(list(range(7)), "reading", "file")) == list(range(7))
    shown = stream.getvalue()
    assert "\r" in shown and "reading" in shown and "7/7" in shown and "100%" in shown
    assert list(tracked([1, 2], "elsewhere")) == [1, 2]  # outside `showing`: silent (nothing was written)
    assert stream.getvalue() == shown
