"""The lab: paper reproduction beside the library, never under it.

* :mod:`.experiments`  ``vrnn experiment``: experiment files, the runner, the validation-only settings
  search, claims, the report layouts, anomaly scoring
* :mod:`.analysis`     Fig. 2-style latent analysis and sample quality (``vrnn analyze``)
* :mod:`.metrics`      the papers' metrics (spectral, alignment, style drift)
* :mod:`.speed`        ``vrnn bench``: the measured configurations and the textbook per-step reference

The lab imports the library; nothing outside ``vrnn/lab`` but the command line (which wires the lab's
commands in lazily) imports the lab — ``tests/test_layout.py`` checks it.
"""
