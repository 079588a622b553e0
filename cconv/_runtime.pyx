"""What the running process offers cconv's compiled loops: OpenMP and the CPU.

Built once, with the baseline flags of the platform, so that it loads on any
CPU and can tell which build of the direct loops (``cconv._correlate`` and
its per-ISA twins) this one runs.  OpenMP's thread count is process-wide
state of the OpenMP runtime, shared by every compiled module of cconv.
"""

include "_build_info.pxi"

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int cconv_openmp_enabled(void) { return 1; }
    static int cconv_omp_get_max_threads(void) { return omp_get_max_threads(); }
    static void cconv_omp_set_num_threads(int n) { omp_set_num_threads(n); }
    #else
    static int cconv_openmp_enabled(void) { return 0; }
    static int cconv_omp_get_max_threads(void) { return 1; }
    static void cconv_omp_set_num_threads(int n) { (void)n; }
    #endif
    """
    int cconv_openmp_enabled() noexcept nogil
    int cconv_omp_get_max_threads() noexcept nogil
    void cconv_omp_set_num_threads(int n) noexcept nogil

cdef extern from *:
    """
    /* Which x86-64 level the running CPU supports (and the OS enables), by
       GCC's cpu-indicator: 4 = x86-64-v4 (AVX-512), 3 = x86-64-v3 (AVX2,
       FMA), 0 = anything else. */
    static int cconv_cpu_level(void) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                 && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")
                 && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("movbe");
        int v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                 && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq")
                 && __builtin_cpu_supports("avx512vl");
        return v4 ? 4 : (v3 ? 3 : 0);
    #else
        return 0;
    #endif
    }
    """
    int cconv_cpu_level() noexcept nogil


def cpu_level():
    """x86-64 level of the running CPU: 4 (AVX-512), 3 (AVX2 + FMA) or 0."""
    return cconv_cpu_level()


def openmp_enabled():
    """Whether cconv was compiled with OpenMP."""
    return bool(cconv_openmp_enabled())


def get_max_threads():
    """OpenMP's thread count for the next parallel loop started by this thread."""
    return cconv_omp_get_max_threads()


def set_num_threads(int n):
    """Set OpenMP's thread count for loops started by the calling thread."""
    cconv_omp_set_num_threads(n)
