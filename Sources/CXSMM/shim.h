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

/// A batch-reduce kernel with bfloat16 A and B and float32 C (vdpbf16ps where the CPU has
/// AVX-512 BF16): A in VNNI-2 form (column-major m x k with each pair of k interleaved: element
/// (i, p) at a[(p / 2) * 2 lda + 2 i + p % 2]), k even; NULL when the JIT cannot make one.
static inline libxsmm_bsmmfunction_reducebatch_addr cxsmm_dispatch_bf16(int m, int n, int k, int lda, int ldb, int ldc, float beta) {
    libxsmm_blasint la = lda, lb = ldb, lc = ldc;
    float alpha = 1.0f;
    int flags = LIBXSMM_GEMM_FLAG_VNNI_A;
    int prefetch = LIBXSMM_PREFETCH_NONE;
    return libxsmm_bsmmdispatch_reducebatch_addr(m, n, k, &la, &lb, &lc, &alpha, &beta, &flags, &prefetch);
}

/// C = beta C + sum over i < count of A[i] B[i], bfloat16 operands. The kernel advances the
/// pointers in `a` and `b` as it goes: pass arrays the caller does not reuse.
static inline void cxsmm_call_bf16(libxsmm_bsmmfunction_reducebatch_addr kernel, const libxsmm_bfloat16 **a,
                                   const libxsmm_bfloat16 **b, float *c, unsigned long long count) {
    kernel(a, b, c, &count);
}
