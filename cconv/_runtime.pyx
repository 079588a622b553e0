"""What the running process offers cconv's compiled loops: OpenMP and the CPU.

Built once, with the baseline flags of the platform, so that it loads on any
CPU and can tell which build of the direct loops (``cconv._correlate`` and
its per-ISA twins) this one runs.  OpenMP's thread count is process-wide
state of the OpenMP runtime, shared by every compiled module of cconv.
"""

include "_build_info.pxi"

cdef extern from "runtime.h":
    int cconv_openmp_enabled() noexcept nogil
    int cconv_omp_get_max_threads() noexcept nogil
    void cconv_omp_set_num_threads(int n) noexcept nogil
    int cconv_cpu_level() noexcept nogil
    int cconv_cpu_level_cpuid() noexcept nogil
    const char* CCONV_CPU_QUERY
    const char* CCONV_OPENMP_NOTE


def cpu_level():
    """x86-64 level of the running CPU: 4 (AVX-512), 3 (AVX2 + FMA) or 0."""
    return cconv_cpu_level()


def cpu_level_cpuid():
    """:func:`cpu_level` by CPUID alone (the fallback), whatever the compiler had."""
    return cconv_cpu_level_cpuid()


def cpu_query():
    """How :func:`cpu_level` asks: '__builtin_cpu_supports', 'cpuid' or 'none: not x86-64'."""
    return CCONV_CPU_QUERY.decode()


def openmp_note():
    """'on', or why this build has no OpenMP (as setup.py found it)."""
    if cconv_openmp_enabled():
        return "on"
    note = CCONV_OPENMP_NOTE.decode()
    return note if note.startswith("off") else "off"


def openmp_enabled():
    """Whether cconv was compiled with OpenMP."""
    return bool(cconv_openmp_enabled())


def get_max_threads():
    """OpenMP's thread count for the next parallel loop started by this thread."""
    return cconv_omp_get_max_threads()


def set_num_threads(int n):
    """Set OpenMP's thread count for loops started by the calling thread."""
    cconv_omp_set_num_threads(n)
