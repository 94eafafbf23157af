// LIBXSMM 1.17 (Debian libxsmm-dev): JIT-generated batch-reduce GEMM kernels
// (C = beta C + sum_i A_i B_i, column-major), the building block of Diffuse's convolutions.
// The kernels are variadic C function pointers, which Swift cannot call: wrapped here.
#pragma once
#include <libxsmm.h>

/// A single-precision batch-reduce kernel for (m, n, k, lda, ldb, ldc, beta, transposed B);
/// NULL when the JIT cannot make one.
static inline libxsmm_smmfunction_reducebatch_addr cxsmm_dispatch(int m, int n, int k, int lda, int ldb, int ldc,
                                                                  float beta, int transposeB) {
    libxsmm_blasint la = lda, lb = ldb, lc = ldc;
    float alpha = 1.0f;
    int flags = transposeB ? LIBXSMM_GEMM_FLAG_TRANS_B : LIBXSMM_GEMM_FLAG_NONE;
    int prefetch = LIBXSMM_PREFETCH_NONE;
    return libxsmm_smmdispatch_reducebatch_addr(m, n, k, &la, &lb, &lc, &alpha, &beta, &flags, &prefetch);
}

/// C = beta C + sum over i < count of A[i] B[i].
static inline void cxsmm_call(libxsmm_smmfunction_reducebatch_addr kernel, const float **a, const float **b,
                              float *c, unsigned long long count) {
    kernel(a, b, c, &count);
}
