"""The package installs whole: a wheel built from the tracked files holds every package of the tree, and installed
into a fresh venv with only the runtime dependencies it runs `sklambda --help` and imports every runtime module.

`make test` uses an editable install, which finds modules in the tree whether or not the wheel would ship them;
this test is the only one that sees the package as `pip install .` makes it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.support import ROOT

# Where each top-level package lives in the tree (pyproject's [tool.setuptools.packages.find] `where`).
PACKAGE_ROOTS = {"sklambda": ROOT / "layers" / "sklambda" / "python", "sklambda_infra": ROOT / "infra"}


def tracked_files() -> list[str]:
    return subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True, text=True).stdout.split(
        "\0"
    )[:-1]


def packages_in_tree() -> set[str]:
    """Every folder with an __init__.py under the two package roots, as dotted names."""
    found = set()
    for top, root in PACKAGE_ROOTS.items():
        for init in (root / top).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(".".join(init.parent.relative_to(root).parts))
    return found


def runtime_modules() -> list[str]:
    """Every module of the runtime package (the CLI's tooling modules need the dev extra to import)."""
    names = []
    for top, root in [("sklambda", PACKAGE_ROOTS["sklambda"])]:
        for path in sorted((root / top).rglob("*.py")):
            if "__pycache__" in path.parts or path.name == "__main__.py":
                continue
            parts = path.relative_to(root).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a clean checkout (the tracked files only, copied out of the working tree) as pip builds
    it: in an isolated build environment with pyproject's build requirements."""
    checkout = tmp_path_factory.mktemp("checkout")
    for name in tracked_files():
        source = ROOT / name
        if source.is_file():  # a file deleted but not yet committed is not in a clean checkout either
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / name)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(checkout)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("sklambda-*.whl")
    return built


def test_the_wheel_holds_every_package_of_the_tree(wheel: Path) -> None:
    # GIVEN a wheel built from the tracked files
    with zipfile.ZipFile(wheel) as archive:
        inits = {n for n in archive.namelist() if n.endswith("/__init__.py")}
    # WHEN its packages are compared with the folders of the tree that hold an __init__.py
    in_wheel = {name.removesuffix("/__init__.py").replace("/", ".") for name in inits}
    # THEN none is missing
    assert packages_in_tree() - in_wheel == set()
    assert {"sklambda.batch", "sklambda.monitoring.drift", "sklambda_infra.local", "sklambda_infra.bench"} <= in_wheel


def runtime_closure() -> set[str]:
    """The distributions `pip install sklambda` pulls: [project].dependencies and theirs, without extras."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo = [Requirement(r) for r in distribution("sklambda").requires or []]
    while todo:
        requirement = todo.pop()
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra's requirement (e.g. sklambda[dev]) or another platform's
        name = requirement.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        todo.extend(Requirement(r) for r in distribution(name).requires or [])
        for extra in requirement.extras:  # aws-lambda-powertools[tracer]
            todo.extend(
                Requirement(r)
                for r in distribution(name).requires or []
                if Requirement(r).marker is not None and Requirement(r).marker.evaluate({"extra": extra})
            )
    return seen


def runtime_site(folder: Path) -> Path:
    """A site folder holding only the runtime closure: links to this venv's installed copies, no download."""
    from importlib.metadata import distribution

    folder.mkdir()
    for name in runtime_closure():
        dist = distribution(name)
        # Every top-level entry the distribution installed (packages, modules, .libs, its .dist-info); `..` entries
        # are scripts in bin/, not importable.
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] != ".."}:
            source = Path(dist.locate_file(top))
            if source.exists() and not (folder / top).exists():
                (folder / top).symlink_to(source)
    return folder


def test_the_wheel_installed_in_a_fresh_venv_runs_the_cli_and_imports_every_runtime_module(
    wheel: Path, tmp_path: Path
) -> None:
    # GIVEN a fresh venv with the wheel and only the packages `pip install sklambda` would bring (linked from this
    # venv through a .pth line: no dev tool such as moto, PyYAML or pytest is importable there)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    fresh_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(fresh_site, "dependencies.pth").write_text(f"{runtime_site(tmp_path / 'runtime-site')}\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
        check=True,
        capture_output=True,
    )
    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    # WHEN the installed command runs
    cli = subprocess.run([env_dir / "bin" / "sklambda", "--help"], capture_output=True, text=True, env=clean_env)

    # THEN it starts and prints its usage
    assert cli.returncode == 0, cli.stderr
    assert "usage: sklambda" in cli.stdout

    # WHEN a command that runs on the dev tools starts there (the local stack reads template.yaml with PyYAML)
    local = subprocess.run(
        [env_dir / "bin" / "sklambda", "local", "up"],
        capture_output=True,
        text=True,
        env=clean_env,
        cwd=ROOT,
        timeout=120,
    )

    # THEN it says what to install, without a traceback
    assert local.returncode == 2, local.stderr
    assert "needs the module 'yaml'" in local.stderr and "dev extra" in local.stderr
    assert "Traceback" not in local.stderr

    # WHEN every runtime module of the tree is imported from the fresh venv
    script = (
        "import importlib, sys\n"
        "site = sys.argv[1]\n"
        "for name in sys.argv[2:]:\n"
        "    module = importlib.import_module(name)\n"
        "    assert module.__file__.startswith(site), (name, module.__file__)\n"
        "print('imported', len(sys.argv) - 2)\n"
    )
    names = runtime_modules()
    imported = subprocess.run(
        [python, "-c", script, fresh_site, *names], capture_output=True, text=True, env=clean_env, cwd=tmp_path
    )

    # THEN each one imports, from the wheel's files and not from the tree
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert imported.stdout.strip() == f"imported {len(names)}"
