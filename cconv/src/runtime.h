/* What the running process offers cconv's compiled loops: OpenMP and the
 * CPU level, for cconv/_runtime.pyx (compiled with the baseline flags, so
 * that it loads on any CPU). */
#ifndef CCONV_RUNTIME_H
#define CCONV_RUNTIME_H

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

/* Which x86-64 level the running CPU supports, and the OS enables:
   4 = x86-64-v4 (AVX-512), 3 = x86-64-v3 (AVX2, FMA), 0 = anything else,
   every CPU that is not x86-64 included (a build for one has the
   baseline loops only).

   Where the compiler has them (GCC >= 12; setup.py probes for them and
   defines CCONV_HAVE_CPU_LEVEL_BUILTIN), by __builtin_cpu_supports of
   the levels themselves.  Elsewhere by CPUID: each feature of the level
   (as in the x86-64 psABI) and the vector state enabled in XCR0. */
#if defined(__x86_64__) || (defined(_M_X64) && !defined(_M_ARM64EC))
#define CCONV_X86_64 1
#if !defined(CCONV_HAVE_CPU_LEVEL_BUILTIN) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#define CCONV_HAVE_CPU_LEVEL_BUILTIN 1
#endif
#if defined(_MSC_VER)
#include <intrin.h>
#include <immintrin.h>
static void cconv_cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    int v[4];
    __cpuidex(v, (int)leaf, (int)sub);
    r[0] = (unsigned)v[0]; r[1] = (unsigned)v[1]; r[2] = (unsigned)v[2]; r[3] = (unsigned)v[3];
}
static unsigned long long cconv_xcr0(void) { return _xgetbv(0); }
#else
#include <cpuid.h>
static void cconv_cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}
static unsigned long long cconv_xcr0(void) {
    unsigned lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

#define CCONV_BIT(word, n) (((word) >> (n)) & 1u)
static int cconv_cpu_level_cpuid(void) {
    unsigned r[4], c1, b7, ce = 0;
    unsigned long long xcr0;
    int v2, v3, v4;
    cconv_cpuid(0, 0, r);
    if (r[0] < 7) return 0;
    cconv_cpuid(1, 0, r);
    c1 = r[2];
    cconv_cpuid(7, 0, r);
    b7 = r[1];
    cconv_cpuid(0x80000000u, 0, r);
    if (r[0] >= 0x80000001u) {
        cconv_cpuid(0x80000001u, 0, r);
        ce = r[2];
    }
    /* x86-64-v2: SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT, CMPXCHG16B, LAHF/SAHF */
    v2 = CCONV_BIT(c1, 0) && CCONV_BIT(c1, 9) && CCONV_BIT(c1, 19) && CCONV_BIT(c1, 20)
         && CCONV_BIT(c1, 23) && CCONV_BIT(c1, 13) && CCONV_BIT(ce, 0);
    /* OSXSAVE: the OS saves vector state, and XGETBV may be executed */
    if (!v2 || !CCONV_BIT(c1, 27)) return 0;
    xcr0 = cconv_xcr0();
    /* x86-64-v3: AVX, AVX2, BMI1, BMI2, F16C, FMA, LZCNT, MOVBE; XMM and YMM state */
    v3 = CCONV_BIT(c1, 28) && CCONV_BIT(b7, 5) && CCONV_BIT(b7, 3) && CCONV_BIT(b7, 8)
         && CCONV_BIT(c1, 29) && CCONV_BIT(c1, 12) && CCONV_BIT(ce, 5) && CCONV_BIT(c1, 22)
         && (xcr0 & 0x6) == 0x6;
    /* x86-64-v4: AVX512F, BW, CD, DQ, VL; opmask and ZMM state.  (macOS
       enables ZMM state only on first use: there, v3.) */
    v4 = v3 && CCONV_BIT(b7, 16) && CCONV_BIT(b7, 30) && CCONV_BIT(b7, 28)
         && CCONV_BIT(b7, 17) && CCONV_BIT(b7, 31) && (xcr0 & 0xe6) == 0xe6;
    return v4 ? 4 : (v3 ? 3 : 0);
}
#else
static int cconv_cpu_level_cpuid(void) { return 0; }
#endif

static int cconv_cpu_level(void) {
#if defined(CCONV_X86_64) && defined(CCONV_HAVE_CPU_LEVEL_BUILTIN)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 4;
    return __builtin_cpu_supports("x86-64-v3") ? 3 : 0;
#else
    return cconv_cpu_level_cpuid();
#endif
}

#if !defined(CCONV_X86_64)
#define CCONV_CPU_QUERY "none: not x86-64"
#elif defined(CCONV_HAVE_CPU_LEVEL_BUILTIN)
#define CCONV_CPU_QUERY "__builtin_cpu_supports"
#else
#define CCONV_CPU_QUERY "cpuid"
#endif
/* setup.py defines CCONV_OPENMP_NOTE: "on", or why not. */
#ifndef CCONV_OPENMP_NOTE
#define CCONV_OPENMP_NOTE "unknown"
#endif
#endif
