"""The ``.pyi`` stubs of cconv's compiled modules against the modules themselves.

mypy's stubtest imports each compiled module of the installed cconv and
compares every name, signature and enum member with its stub, as
pykdtree's ``test_stub.py`` does.

Where stubtest looks.  It finds stubs through mypy's module search, which
does not see an editable install (setuptools' import hook), and it skips a
private module whose stub it cannot find (``cconv._correlate``) without an
error.  So it is pointed at a copy of the installed package's stubs and
nothing else, and a control run checks that a stub it is shown is really
compared.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cconv

pytest.importorskip("mypy.stubtest", reason="mypy is not installed (it comes with cconv[test])")

# Every compiled module, and the per-ISA twins of the direct loops, built on x86-64 only.
COMPILED = ["_runtime", "_correlate", "_conv2d_direct", "_match_cy", "_exact"]
TWINS = ["_correlate_v3", "_correlate_v4", "_conv2d_direct_v3", "_conv2d_direct_v4", "_exact_v3", "_exact_v4"]


def _stubtest(tmp_path: Path, modules: list[str], edit: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run stubtest on ``cconv.<module>`` with the installed stubs (``edit``: stubs replaced)."""
    stubs = tmp_path / "stubs" / "cconv"
    stubs.mkdir(parents=True)
    for path in Path(cconv.__file__).parent.glob("*.pyi"):
        shutil.copy(path, stubs)
    # A regular package, which mypy prefers to an installed cconv (a mere
    # directory of stubs would count as a namespace package, which it does not).
    (stubs / "__init__.pyi").write_text("")
    for name, text in (edit or {}).items():
        (stubs / name).write_text(text)
    # Run from tmp_path, so that neither Python nor mypy finds a source checkout.
    return subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", *(f"cconv.{m}" for m in modules)],
        cwd=tmp_path, env={**os.environ, "MYPYPATH": str(stubs.parent)},
        capture_output=True, text=True, timeout=600,
    )


def test_stubs_match_the_compiled_modules(tmp_path):
    twins = [m for m in TWINS if importlib.util.find_spec(f"cconv.{m}") is not None]
    modules = COMPILED + twins
    for m in modules:
        assert (Path(cconv.__file__).parent / f"{m}.pyi").is_file(), f"cconv/{m}.pyi is not installed"
    result = _stubtest(tmp_path, modules)
    assert result.returncode == 0, f"stubtest failed:\n{result.stdout}{result.stderr}"


def test_stubtest_compares_the_stubs_it_is_shown(tmp_path):
    # A stub without cpu_level(): stubtest must say so, else it checked nothing.
    stub = (Path(cconv.__file__).parent / "_runtime.pyi").read_text()
    lines = [line for line in stub.splitlines() if not line.startswith("def cpu_level(")]
    assert len(lines) < len(stub.splitlines()), "_runtime.pyi declares no cpu_level() any more"
    result = _stubtest(tmp_path, ["_runtime"], {"_runtime.pyi": "\n".join(lines) + "\n"})
    assert result.returncode != 0 and "cconv._runtime.cpu_level" in result.stdout, result.stdout + result.stderr
