"""The package as users get it: built as for a release, installed in fresh virtualenvs, never this checkout.

- `python -m build` makes an sdist and a wheel without warnings; the sdist holds the guides that
  /docs, /openapi.json and the README point to, the license and the Makefile; the metadata has
  the license and the project's URLs, and the README it carries (a package index's page) links
  only to absolute addresses.
- The wheel holds one top-level import package, `latentcast`, with every module of latentcast/,
  server/ and client/ and every page of static/.
- `pip install latentcast` (no extra) is the client: torch is not importable there, yet
  `latentcast generate` and `AsyncClient` work against a server, `latentcast --version` answers, and
  `latentcast serve` says in one line which extra to install.
- The README's CPU install of the server, run in a clean virtualenv, gives torch's CPU build and a
  server that serves its pages from the installed package (see `server_venv` for the one step
  that runs differently on this machine, and why).
"""

from __future__ import annotations

import email
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import tomllib
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, ServerProcess

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
REPOSITORY = "https://github.com/latentcast/latentcast"  # a placeholder until the repository is public


class Built:
    """What `python -m build` made, and what it printed."""

    def __init__(self, folder: Path, output: str) -> None:
        (self.sdist,) = folder.glob("latentcast-*.tar.gz")
        (self.wheel,) = folder.glob("latentcast-*.whl")
        self.output = output


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The sdist, and the wheel built from it, as `python -m build` makes them for a release
    (without build isolation: this environment already has the build backend)."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True, cwd=out, capture_output=True, text=True,
    )
    return Built(out, result.stdout + result.stderr)


@pytest.fixture(scope="module")
def wheel(built: Built) -> Path:
    return built.wheel


def _make_venv(folder: Path) -> Path:
    """A fresh virtualenv; returns its bin folder."""
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    return folder / "bin"


def _run(bin_dir: Path, *args: str, cwd: Path, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    # Outside the checkout, with the virtualenv first on PATH and none of this interpreter's paths.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=check, timeout=timeout)


def _pip_install(bin_dir: Path, *requirements: str, cwd: Path) -> None:
    # --no-compile: byte-compiling every module of torch and transformers costs more than the few
    # this file imports compile on first use, and nothing here reads the .pyc files.
    _run(bin_dir, str(bin_dir / "pip"), "install", "-q", "--no-compile", *requirements, cwd=cwd)


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
    expected |= {f"latentcast/{p.name}" for p in (ROOT / "latentcast").glob("*.py")}
    expected |= {"latentcast/py.typed", "latentcast/client/py.typed"}
    assert sorted(expected - set(names)) == []


@pytest.fixture(scope="module")
def client_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pip install latentcast` from the wheel: the client and nothing of the server's stack."""
    bin_dir = _make_venv(tmp_path_factory.mktemp("client-venv"))
    _pip_install(bin_dir, str(wheel), cwd=wheel.parent)
    return bin_dir


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


# The clients installed from the wheel talk to the shared server (this checkout's): one backend is enough.
@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_client_install_generates_through_the_cli(client_venv: Path, server: ServerProcess, tmp_path: Path) -> None:
    out = tmp_path / "lighthouse.png"
    result = _run(
        client_venv,
        str(client_venv / "latentcast"),
        "generate", "a lighthouse at dusk", "--size", "64x64", "--steps", "2", "--seed", "7", "-q",
        "--server", server.base_url, "-o", str(out),
        cwd=tmp_path,
    )
    assert result.stdout.strip().splitlines() == [str(out)]
    assert out.read_bytes().startswith(PNG_SIGNATURE)


@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_client_install_follows_events_with_async_client(
    client_venv: Path, server: ServerProcess, tmp_path: Path
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
    result = _run(client_venv, str(client_venv / "python"), "-c", script, server.base_url, cwd=tmp_path)
    where, seqs, last = result.stdout.strip().splitlines()
    assert Path(where).is_relative_to(client_venv.parent)  # the installed package, not this checkout
    numbers = [int(n) for n in seqs.split()]
    assert numbers == list(range(1, len(numbers) + 1))
    assert last == "task_postprocess_end 3"


# The README's CPU install of the server, word for word.
DOCUMENTED_CPU_INSTALL = (
    "pip install torch --index-url https://download.pytorch.org/whl/cpu",
    'pip install "latentcast[server]"',
)


@pytest.fixture(scope="module")
def server_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtualenv where the README's CPU install of the server ran, in the form that works here.

    Its second command runs as written, with the built wheel in place of the package's name (it is
    on no index). Its first does not: PyTorch's CPU-only index is out of this machine's reach (only
    PyPI is), so torch's CPU build comes from the wheel that pip's own configuration here finds on
    this machine's disk (its find-links), asked for as `torch==2.13.0` because PyPI's newer torch,
    the CUDA build, would otherwise win. Everything else comes from the indexes pip is set up with,
    as it does for a user.
    """
    readme = (ROOT / "README.md").read_text()
    assert all(command in readme for command in DOCUMENTED_CPU_INSTALL)
    bin_dir = _make_venv(tmp_path_factory.mktemp("server-venv"))
    _pip_install(bin_dir, "torch==2.13.0", cwd=wheel.parent)
    _pip_install(bin_dir, f"{wheel}[server]", cwd=wheel.parent)
    return bin_dir


@pytest.mark.timeout(1200)
def test_the_documented_cpu_install_has_no_cuda(server_venv: Path, tmp_path: Path) -> None:
    probe = _run(
        server_venv, str(server_venv / "python"), "-c",
        "import torch, importlib.metadata as m; print(torch.__version__, torch.version.cuda); "
        "print(sorted(d.metadata['Name'] for d in m.distributions() if d.metadata['Name'].lower().startswith('nvidia')))",
        cwd=tmp_path,
    )
    version, nvidia = probe.stdout.strip().splitlines()
    assert version == "2.13.0+cpu None"
    assert nvidia == "[]"
    size = sum(f.stat().st_size for f in server_venv.parent.rglob("*") if f.is_file() and not f.is_symlink())
    assert size < 2 * 1024**3, f"{size / 1024**3:.1f} GiB"  # PyPI's CUDA build makes about 6 GB


@pytest.mark.timeout(1200)
def test_the_installed_server_serves_its_pages_and_default_model_from_the_package(server_venv: Path, tmp_path: Path) -> None:
    site_packages = next((server_venv.parent / "lib").glob("python3.*/site-packages"))
    where = _run(
        server_venv, str(server_venv / "python"), "-c", "import latentcast.static as s; print(s.__file__)", cwd=tmp_path
    )
    assert Path(where.stdout.strip()).is_relative_to(site_packages)

    # the default model: the drawing builtin's weights, loaded from the installed package
    process = ServerProcess(tmp_path / "data", python=str(server_venv / "python"), cwd=tmp_path, model=None).start()
    try:
        models = httpx.get(process.base_url + "/v1/models", timeout=30).json()["data"]
        assert models[0]["id"] == "builtin:shapes"
        for path, marker in (("/", "<canvas"), ("/dashboard", "dashboard"), ("/static/js/protocol.js", "decodeFrame")):
            response = httpx.get(process.base_url + path, timeout=30)
            assert response.status_code == 200, path
            assert marker in response.text, path
        out = tmp_path / "installed.png"
        _run(
            server_venv, str(server_venv / "latentcast"), "generate", "an installed server", "--size", "64x64",
            "--steps", "2", "-q", "--server", process.base_url, "-o", str(out), cwd=tmp_path,
        )
        assert out.read_bytes().startswith(PNG_SIGNATURE)
    finally:
        process.stop()


def test_the_client_install_tells_its_version(client_venv: Path, tmp_path: Path) -> None:
    command = _run(client_venv, str(client_venv / "latentcast"), "--version", cwd=tmp_path)
    assert command.stdout.strip() == f"latentcast {VERSION}"
    module = _run(client_venv, str(client_venv / "python"), "-c", "import latentcast; print(latentcast.__version__)", cwd=tmp_path)
    assert module.stdout.strip() == VERSION


def test_the_build_warns_of_nothing(built: Built) -> None:
    assert "absent from the `packages` configuration" not in built.output
    assert "Warning" not in built.output, built.output


def test_the_sdist_holds_the_guides_the_license_and_the_makefile(built: Built) -> None:
    top = f"latentcast-{VERSION}"
    names = set(tarfile.open(built.sdist).getnames())
    guides = {f"{top}/{p.relative_to(ROOT)}" for p in (ROOT / "docs").rglob("*") if p.is_file()}
    assert {f"{top}/docs/protocol.md", f"{top}/docs/screenshots/live-running-wide.png"} <= guides
    assert sorted(guides - names) == []
    assert {f"{top}/LICENSE", f"{top}/Makefile", f"{top}/README.md", f"{top}/pyproject.toml"} <= names


def test_the_metadata_has_the_license_urls_and_a_readme_with_absolute_links(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as wheel:
        metadata = email.message_from_bytes(wheel.read(f"latentcast-{VERSION}.dist-info/METADATA"))
        assert "MIT License" in wheel.read(f"latentcast-{VERSION}.dist-info/licenses/LICENSE").decode()
    assert metadata["License-Expression"] == "MIT"
    assert sorted(metadata.get_all("Project-URL")) == [
        f"Documentation, {REPOSITORY}/tree/main/docs",
        f"Homepage, {REPOSITORY}",
        f"Issues, {REPOSITORY}/issues",
        f"Source, {REPOSITORY}",
    ]
    readme = metadata.get_payload()
    assert readme.startswith("# Latentcast")
    targets = re.findall(r"\]\(([^)]+)\)", readme)
    assert targets, "the README links to its guides"
    assert [target for target in targets if not target.startswith("https://")] == []
