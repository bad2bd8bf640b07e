# Two commands: `make demo` and `make test`. Both create .venv and install everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install clean

$(STAMP): pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: the CPU build here; the library itself only asks torch>=2.3
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	# every extra (audio, music, tensorboard, lab: see pyproject.toml) and pytest
	$(PY) -m pip install -q --disable-pip-version-check -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) scripts/demo.py --out results

test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) results
