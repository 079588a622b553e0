/* No contraction of a multiply and an add into one FMA in the translation
 * unit that includes this (cconv/_exact.pxi): its sums must round as SciPy's
 * do, each product and each addition on its own. */
#ifndef CCONV_NO_CONTRACTION_H
#define CCONV_NO_CONTRACTION_H

/* No contraction of a multiply and an add into an FMA, in the source as
   in setup.py's flags (-ffp-contract=off; MSVC's /fp:precise contracts
   on VS 2019 with /arch:AVX2, which the pragma stops). */
#if defined(_MSC_VER) && !defined(__clang__)
#pragma fp_contract (off)
#elif defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif
#endif
