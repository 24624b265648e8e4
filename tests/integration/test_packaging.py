"""Packaging: what setuptools builds holds every package of the source tree (none is silently dropped)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ("shared", "functions", "cli", "devtools", "provisioning")


def _packages(base: Path) -> set[str]:
    found = set()
    for top in SHIPPED:
        for init in (base / top).rglob("__init__.py"):
            if "__pycache__" not in init.parts:
                found.add(".".join(init.parent.relative_to(base).parts))
    return found


def test_the_build_holds_every_package_and_the_function_app(tmp_path: Path) -> None:
    source, built = tmp_path / "source", tmp_path / "built"
    # a clean copy, as in a fresh clone: a left-over *.egg-info would list the files of an earlier build
    for name in (*SHIPPED, "pyproject.toml", "function_app.py", "requirements.txt", "README.md"):
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(path, source / name)
    build = [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build_py", "--build-lib", str(built)]
    done = subprocess.run(build, cwd=source, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr[-2000:]
    expected = _packages(ROOT)
    assert {"shared.app", "shared.records", "shared.domain"} <= expected
    assert _packages(built) == expected
    assert (built / "function_app.py").is_file()
