"""The one thing pyproject.toml cannot say: the repository's ``configs/`` ships inside the package as
``vrnn/presets/`` (one real folder, no copy, no symlink), so ``vrnn train --config srnn-polyphonic``
finds the shipped presets in any installation. Everything else is in pyproject.toml."""
from setuptools import find_packages, setup

setup(packages=find_packages(include=["vrnn", "vrnn.*"]) + ["vrnn.presets"],
      package_dir={"vrnn.presets": "configs"},
      package_data={"vrnn": ["py.typed"], "vrnn.presets": ["*.toml", "**/*.toml"]})
