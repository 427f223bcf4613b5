"""The package as users install it: a built wheel in fresh virtualenvs, never this checkout.

- The wheel holds one top-level import package, `latentcast`, with every module of server/ and
  client/ and every page of static/.
- `pip install latentcast` (no extra) is the client: torch is not importable there, yet
  `latentcast generate` and `AsyncClient` work against a server, and `latentcast serve` says in one
  line which extra to install.
- Installed non-editable with the server's dependencies, the service serves its pages from the
  installed package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import venv
import zipfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, ServerProcess

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from this checkout as `pip wheel .` builds it for a user."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        check=True,
        cwd=out,
    )
    (built,) = out.glob("latentcast-*.whl")
    return built


def _make_venv(folder: Path) -> Path:
    """A fresh virtualenv; returns its bin folder."""
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    return folder / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # Outside the checkout, with the virtualenv first on PATH and none of this interpreter's paths.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=check, timeout=timeout)


def test_wheel_holds_one_package_with_every_module_and_page(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"latentcast"}

    expected = {f"latentcast/server/{p.relative_to(ROOT / 'server')}" for p in (ROOT / "server").rglob("*.py")}
    expected |= {f"latentcast/client/{p.relative_to(ROOT / 'client')}" for p in (ROOT / "client").rglob("*.py")}
    expected |= {
        f"latentcast/static/{p.relative_to(ROOT / 'static')}"
        for p in (ROOT / "static").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    expected |= {"latentcast/__init__.py", "latentcast/__main__.py", "latentcast/client/py.typed"}
    assert sorted(expected - set(names)) == []


@pytest.fixture(scope="module")
def client_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install latentcast` from the wheel: the client and nothing of the server's stack."""
    bin_dir = _make_venv(tmp_path_factory.mktemp("client-venv"))
    _run(bin_dir, str(bin_dir / "pip"), "install", "-q", str(wheel), cwd=wheel.parent)
    return bin_dir


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("served")).start()
    yield process
    process.stop()


def test_client_install_has_no_server_stack(client_venv: Path, tmp_path: Path) -> None:
    probe = _run(
        client_venv,
        str(client_venv / "python"),
        "-c",
        "import importlib.util as u; print([m for m in ('torch', 'diffusers', 'transformers', 'accelerate', "
        "'starlette', 'uvicorn') if u.find_spec(m)])",
        cwd=tmp_path,
    )
    assert probe.stdout.strip() == "[]"


def test_client_install_says_which_extra_serve_needs(client_venv: Path, tmp_path: Path) -> None:
    result = _run(client_venv, str(client_venv / "latentcast"), "serve", cwd=tmp_path, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert 'pip install "latentcast[server]"' in lines[0]
    assert lines[0].startswith("latentcast serve:")


def test_client_install_generates_through_the_cli(client_venv: Path, served: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "lighthouse.png"
    result = _run(
        client_venv,
        str(client_venv / "latentcast"),
        "generate", "a lighthouse at dusk", "--size", "64x64", "--steps", "2", "--seed", "7", "-q",
        "--server", served.base_url, "-o", str(out),
        cwd=tmp_path,
    )
    assert result.stdout.strip().splitlines() == [str(out)]
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_client_install_follows_events_with_async_client(
    client_venv: Path, served: ServerProcess, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        import latentcast
        from latentcast import AsyncClient, ProgressEvent

        async def main() -> None:
            async with AsyncClient(sys.argv[1]) as client:
                task = await client.submit("a red circle", width=64, height=64, num_inference_steps=3)
                events = [event async for event in task.events()]
                print(latentcast.__file__)
                print(" ".join(str(e.seq) for e in events))
                print(events[-1].type, sum(isinstance(e, ProgressEvent) for e in events))

        asyncio.run(main())
        """
    )
    result = _run(client_venv, str(client_venv / "python"), "-c", script, served.base_url, cwd=tmp_path)
    where, seqs, last = result.stdout.strip().splitlines()
    assert Path(where).is_relative_to(client_venv.parent)  # the installed package, not this checkout
    numbers = [int(n) for n in seqs.split()]
    assert numbers == list(range(1, len(numbers) + 1))
    assert last == "task_postprocess_end 3"


def test_installed_server_serves_its_pages_from_the_package(wheel: Path, tmp_path: Path) -> None:
    """Non-editable install; the server's dependencies come from this test run's environment.

    A new virtualenv gets the wheel without dependencies, and a .pth line that puts this
    environment's site-packages behind its own (torch and the rest, not re-downloaded). Only a
    path is added, so this checkout's editable finder does not run there: `latentcast` is the wheel.
    """
    bin_dir = _make_venv(tmp_path / "venv")
    _run(bin_dir, str(bin_dir / "pip"), "install", "-q", "--no-deps", str(wheel), cwd=tmp_path)
    site_packages = next((tmp_path / "venv" / "lib").glob("python3.*/site-packages"))
    ours = next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site_packages / "server-dependencies.pth").write_text(ours + "\n")

    where = _run(bin_dir, str(bin_dir / "python"), "-c", "import latentcast.static as s; print(s.__file__)", cwd=tmp_path)
    assert Path(where.stdout.strip()).is_relative_to(site_packages)

    process = ServerProcess(tmp_path / "data", python=str(bin_dir / "python"), cwd=tmp_path).start()
    try:
        for path, marker in (("/", "<canvas"), ("/dashboard", "dashboard"), ("/static/js/protocol.js", "decodeFrame")):
            response = httpx.get(process.base_url + path, timeout=30)
            assert response.status_code == 200, path
            assert marker in response.text, path
    finally:
        process.stop()
