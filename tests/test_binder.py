"""The Binder launch: what repo2docker would build, and the notebooks run from its requirements.

Binder cannot be reached from here, so these tests check each part it uses for real:
repo2docker's generated Dockerfile (it needs no Docker with ``--no-build``), the ``start`` script
(it starts a real redis-server), ``postBuild`` (it writes the JupyterLab setting), and a fresh
virtual environment built from ``binder/requirements.txt`` alone that runs every notebook.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import venv
from pathlib import Path

import pytest
from needs import missing

ROOT = Path(__file__).resolve().parent.parent
BINDER = ROOT / "binder"


def require_binary(name: str, install: str) -> str:
    """The path of a program the test needs; a skip saying how to install it (a failure in CI)."""
    path = shutil.which(name)
    if path is None:
        missing(f"{name} is not installed: {install}", "check the Binder launch")
    return path


@pytest.fixture(scope="module")
def dockerfile() -> str:
    repo2docker = str(Path(sys.executable).with_name("jupyter-repo2docker"))
    if not Path(repo2docker).exists():
        repo2docker = require_binary("jupyter-repo2docker", 'pip install -e ".[test]"')
    run = subprocess.run(
        [repo2docker, "--no-build", "--debug", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return run.stdout + run.stderr


def test_binder_uses_the_python_minor_version_ci_uses(dockerfile: str) -> None:
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert (BINDER / "runtime.txt").read_text().strip() == f"python-{minor}"
    assert f"Building conda environment for python={minor}" in dockerfile


def test_requirements_are_installed_after_the_repository_is_copied(dockerfile: str) -> None:
    copy_repo = dockerfile.index("COPY --chown=0:0 src/ ${REPO_DIR}/")
    install = dockerfile.index('pip install --no-cache-dir -r "binder/requirements.txt"')
    assert copy_repo < install, "`-e .` needs the repository in place before pip runs"


def test_redis_comes_from_apt_and_start_runs_at_launch(dockerfile: str) -> None:
    assert re.search(r"apt-get install --yes --no-install-recommends redis-server", dockerfile)
    assert "RUN ./binder/postBuild" in dockerfile
    assert 'ENV R2D_ENTRYPOINT="${REPO_DIR}/binder/start"' in dockerfile


def test_requirements_pin_every_dependency_and_install_the_package() -> None:
    lines = [
        line.split("#")[0].strip()
        for line in (BINDER / "requirements.txt").read_text().splitlines()
        if line.split("#")[0].strip()
    ]
    assert "-e ." in lines
    pins = {line.split("==")[0].lower() for line in lines if line != "-e ."}
    assert all("==" in line for line in lines if line != "-e .")
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    needed = {re.split(r"[<>=!~ \[]", dep)[0].lower() for dep in project["dependencies"]}
    assert needed <= pins, f"pin these in binder/requirements.txt too: {needed - pins}"


def test_post_build_makes_jupyterlab_save_widget_state(tmp_path: Path) -> None:
    env = {**os.environ, "NB_PYTHON_PREFIX": str(tmp_path)}
    subprocess.run([str(BINDER / "postBuild")], env=env, check=True, timeout=60)
    settings = tmp_path / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    plugin = json.loads(settings.read_text())["@jupyter-widgets/jupyterlab-manager:plugin"]
    assert plugin == {"saveState": True}


def test_start_runs_a_local_redis_then_the_given_command(tmp_path: Path) -> None:
    require_binary("redis-server", "sudo apt-get install redis-server")
    cli = require_binary("redis-cli", "sudo apt-get install redis-server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "REDIS_PORT": str(port), "TMPDIR": str(tmp_path)}
    try:
        run = subprocess.run(
            [str(BINDER / "start"), cli, "-p", str(port), "ping"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.stdout.strip() == "PONG", run.stderr
    finally:
        subprocess.run([cli, "-p", str(port), "shutdown", "nosave"], capture_output=True)


#: repo2docker 2026.4's base environment, as far as our requirements meet it (NOTES.md).
BINDER_BASE = ("notebook==7.4.7", "jupyterlab==4.4.9", "ipykernel==7.0.1", "jupyter_server==2.17.0")


@pytest.mark.slow
def test_notebooks_run_in_an_environment_built_from_binder_requirements(tmp_path: Path) -> None:
    """As Binder would: repo2docker's base environment, binder/requirements.txt on top of it
    (which must leave every installed package's requirements met: `pip check`), then every
    notebook executed; the only errors allowed are the ones a cell shows on purpose."""
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    pip = [str(python), "-m", "pip"]
    subprocess.run([*pip, "install", "-q", *BINDER_BASE], check=True, timeout=900)
    base = _installed(python)
    subprocess.run(
        [*pip, "install", "-q", "-r", str(BINDER / "requirements.txt")],
        cwd=ROOT,
        check=True,
        timeout=900,
    )
    check = subprocess.run([*pip, "check"], capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    added = _installed(python) - base - _pinned()
    assert not added, f"binder/requirements.txt installs these without pinning them: {added}"
    run = subprocess.run(
        [str(python), "-c", RUN_NOTEBOOKS, str(ROOT / "notebooks"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "notebooks ran: " in run.stdout


def _installed(python: Path) -> set[str]:
    """The names of the packages installed in the environment of ``python`` (not editable)."""
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    return {_normal(line.split("==")[0]) for line in listed}


def _pinned() -> set[str]:
    lines = (BINDER / "requirements.txt").read_text().splitlines()
    return {_normal(line.split("==")[0]) for line in lines if "==" in line}


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "-")


# Runs inside the Binder-like environment: only what binder/requirements.txt installed.
RUN_NOTEBOOKS = """
import sys
from pathlib import Path
import nbformat
from nbclient import NotebookClient

source, out = Path(sys.argv[1]), Path(sys.argv[2])
out.mkdir()
paths = sorted(source.glob("[0-9][0-9]_*.ipynb"))
for path in paths:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(source)}}).execute()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        errors = [o for o in cell.outputs if o.output_type == "error"]
        on_purpose = "raises-exception" in cell.metadata.get("tags", [])
        if errors and not on_purpose and "NBVAL_RAISES_EXCEPTION" not in cell.source:
            sys.exit(f"{path.name}: {errors[0].ename}: {errors[0].evalue} in {cell.source[:80]!r}")
    nbformat.write(notebook, out / path.name)
print("notebooks ran:", len(paths))
"""
