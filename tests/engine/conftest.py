"""Shared fixtures: the builtin model is built and loaded once per test session (about 0.3 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentcast.server.engine.loader import LoadedModel, load_pipeline


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def tiny(data_dir: Path) -> LoadedModel:
    return load_pipeline("builtin:tiny", data_dir=data_dir)
