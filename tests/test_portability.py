"""What the build chose and what the running process found: CPU level, OpenMP, memory, BLAS.

The build adapts to its compiler (setup.py) and the run time to its system;
these tests check that each answer is consistent with the others, whatever
compiler and platform built this copy of cconv.
"""

from __future__ import annotations

import importlib
import importlib.util
import io
import platform
from contextlib import redirect_stdout

import pytest

import cconv
from cconv import _config, _dispatch, _runtime, _validation

X86_64 = platform.machine().lower() in ("x86_64", "amd64")

# The /proc/cpuinfo flags of each x86-64 level (as the psABI defines them; LZCNT is "abm").
LEVEL_FLAGS = {
    3: {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "abm", "movbe", "xsave",
        "sse4_1", "sse4_2", "ssse3", "popcnt", "cx16", "lahf_lm"},
    4: {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"},
}


def _cpuinfo_flags() -> set[str] | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None


def test_cpu_level_by_either_query_agrees():
    """The level builtin (where the compiler has it) and CPUID give one answer."""
    assert _runtime.cpu_level() in (0, 3, 4)
    assert _runtime.cpu_level() == _runtime.cpu_level_cpuid()
    if X86_64:
        assert _runtime.cpu_query() in ("__builtin_cpu_supports", "cpuid")
    else:
        assert _runtime.cpu_query().startswith("none") and _runtime.cpu_level() == 0


@pytest.mark.skipif(not X86_64 or _cpuinfo_flags() is None, reason="needs x86-64 Linux's /proc/cpuinfo")
def test_cpu_level_agrees_with_proc_cpuinfo():
    flags = _cpuinfo_flags()
    expected = 0
    if LEVEL_FLAGS[3] <= flags:
        expected = 4 if LEVEL_FLAGS[4] <= flags else 3
    assert _runtime.cpu_level() == expected, sorted((LEVEL_FLAGS[3] | LEVEL_FLAGS[4]) - flags)


def test_twins_built_only_for_x86_64_and_with_their_flags():
    for name, level in (("v3", 3), ("v4", 4)):
        try:
            twin = importlib.import_module(f"cconv._correlate_{name}")
        except ImportError:
            continue
        assert X86_64, f"a {name} twin in a build for {platform.machine()}"
        _, flags = twin.build_info()
        assert f"x86-64-v{level}" in flags or ("/arch:AVX" in flags), flags
        assert "native" not in flags
    assert "native" not in _runtime.build_info()[1]


def test_the_build_in_use_is_the_best_the_cpu_runs(monkeypatch):
    monkeypatch.delenv("CCONV_KERNELS", raising=False)
    name, module = _dispatch.load("_correlate")
    available = [b for b, level in (("v4", 4), ("v3", 3)) if level <= _runtime.cpu_level()
                 and importlib.util.find_spec(f"cconv._correlate_{b}") is not None]
    assert name == (available[0] if available else "baseline")
    assert module.__name__.endswith(name if name != "baseline" else "_correlate")


def test_show_config_says_what_the_build_and_system_have():
    out = io.StringIO()
    with redirect_stdout(out):
        cconv.show_config()
    text = out.getvalue()
    for key in ("kernels", "cpu_level", "compiler", "flags", "openmp", "conv2d_kernels", "memory_check"):
        assert f"\n{key}" in "\n" + text
    facts = _config.config()
    if _runtime.openmp_enabled():
        assert facts["openmp"] == "on"
    else:
        assert facts["openmp"].startswith("off") and "one thread" in facts["openmp"]
        assert cconv.get_num_threads() == 1


def test_available_memory_without_proc_meminfo(monkeypatch):
    """Where /proc/meminfo is absent the next source answers, or the check says it is off."""
    monkeypatch.setattr(_validation, "_meminfo", lambda: None)
    source = _validation._memory_source()
    if source is not None:
        assert _validation._available_bytes() > 0
        assert _validation.memory_check().startswith(f"on ({source[0]}")
    monkeypatch.setattr(_validation, "_sysconf_available", lambda: None)
    monkeypatch.setattr(_validation, "_windows_available", lambda: None)
    assert _validation._memory_source() is None
    assert _validation._available_bytes() is None
    assert _validation.memory_check().startswith("off")
    _validation.check_memory(2**60, lambda: "a huge call")  # nothing to check against: no error


def test_memory_check_refuses_more_than_available(monkeypatch):
    monkeypatch.setattr(_validation, "_meminfo", lambda: 2**30)
    assert "/proc/meminfo: 1.0 GiB" in _validation.memory_check()
    with pytest.raises(MemoryError, match="more than the 1.0 GiB"):
        _validation.check_memory(2**31, lambda: "a call")
