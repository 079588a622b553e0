/* What a compiled module was built with, for cconv.show_config():
 * included (through cconv/_build_info.pxi) by each module whose flags can
 * differ. */
#ifndef CCONV_BUILD_INFO_H
#define CCONV_BUILD_INFO_H

/* setup.py defines CCONV_CFLAGS. */
#ifndef CCONV_CFLAGS
#define CCONV_CFLAGS "unknown"
#endif
#if defined(__clang__)
#define CCONV_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define CCONV_COMPILER "gcc " __VERSION__
#elif defined(_MSC_VER)
#define CCONV_COMPILER_STR2(v) #v
#define CCONV_COMPILER_STR(v) CCONV_COMPILER_STR2(v)
#define CCONV_COMPILER "msvc " CCONV_COMPILER_STR(_MSC_VER)
#else
#define CCONV_COMPILER "unknown compiler"
#endif
#endif
