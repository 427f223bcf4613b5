"""The installed distribution's version: `latentcast.__version__`, `latentcast --version`, and
the client's User-Agent. It is read from the package's metadata, so pyproject.toml is its one source."""

from __future__ import annotations

import importlib.metadata

__all__ = ["__version__"]

__version__ = importlib.metadata.version("latentcast")
