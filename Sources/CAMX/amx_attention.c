// AMX kernels for attention, one head at a time: see include/CAMX.h and AMXAttention.swift.
//
// Every product is C (32 x 32 float32 blocks) = A B on bf16 tiles: A as rows (16 rows x 32
// values a tile), B in pairs of rows (a tile row holds 16 dwords, each two consecutive k of one
// column). The operands are packed once per head into those forms:
//   S = Q K^T:     A = Q's rows,      B = K^T as pairs (K's rows read as dwords, transposed)
//   O = P V:       A = P's rows,      B = V by pairs of keys
//   dP = dO V^T:   A = dO's rows,     B = V^T as pairs
//   dQ = dS K:     A = dS's rows,     B = K by pairs of keys
//   dV^T = dO^T P: A = dO^T's rows,   B = P by pairs of queries
//   dK^T = Q^T dS: A = Q^T's rows,    B = dS by pairs of queries
// Scores are made 32 query rows at a time and turned into P (and dP into dS) while in L1; the
// backward keeps the head's P and dS (bf16, by pairs of queries) for dV and dK.
#include "CAMX.h"

#if defined(__x86_64__)
#include <math.h>
#include "amx_internal.h"

/// Element 0 of row i of head (b, h).
static inline uint16_t *headRow(camx_heads t, long b, long h, long i) { return t.base + b * t.sb + h * t.sh + i * t.sl; }

static const float log2e = 1.44269504088896341f;

static inline long aligned64(long bytes) { return (bytes + 63) & ~63L; }

/// The next `bytes` of scratch (64-byte aligned when the scratch is).
static inline void *take(char **at, long bytes) {
    void *p = *at;
    *at += aligned64(bytes);
    return p;
}

long camx_attention_scratch(long lq, long lk, long d, long dv) {
    long forward = aligned64(2 * d * lk) + aligned64(2 * lk * dv) + aligned64(4 * 32 * lk) + aligned64(2 * 32 * lk) + 4 * 32 * 32;
    long backward = aligned64(2 * d * lk) + aligned64(2 * dv * lk) + aligned64(2 * lk * d) + aligned64(2 * d * lq)
        + aligned64(2 * dv * lq) + 2 * aligned64(2 * lq * lk) + 2 * aligned64(4 * 32 * lk) + aligned64(2 * 32 * lk) + 4 * 32 * 32;
    return forward > backward ? forward : backward;
}

/// The 32 x 32 block c = sum over `steps` of A_s B_s: A_s two tiles of 16 rows (`lda` bytes
/// apart, the second tile 16 rows below), `aStep` values on per step; B_s two tiles of 16 pair
/// rows (`ldb` bytes apart, the second 16 dwords right), `bStep` values on per step. Rows of c
/// `ldc` bytes apart.
AMX_TARGET static inline void product32(const uint16_t *a, long lda, long aStep, const uint16_t *b, long ldb, long bStep,
                                        long steps, float *c, long ldc) {
    const uint16_t *a1 = (const uint16_t *)((const char *)a + 16 * lda);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (long s = 0; s < steps; s++) {
        _tile_loadd(4, a, lda);
        _tile_loadd(6, b, ldb);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, b + 32, ldb);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, a1, lda);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
        a += aStep;
        a1 += aStep;
        b += bStep;
    }
    float *c1 = (float *)((char *)c + 16 * ldc);
    _tile_stored(0, c, ldc);
    _tile_stored(1, c + 16, ldc);
    _tile_stored(2, c1, ldc);
    _tile_stored(3, c1 + 16, ldc);
}

/// out[p][i] = (x[i][2p], x[i][2p + 1]) for rows i < n and pairs p < width / 2 (out's rows
/// 2n values): x^T as the B operand (k = width).
AMX_TARGET static void packTransposedPairs(const uint16_t *x, long sl, long n, long width, uint16_t *out) {
    for (long i0 = 0; i0 < n; i0 += 16) {
        for (long p0 = 0; p0 < width / 2; p0 += 16) {
            __m512i r[16];
            for (int j = 0; j < 16; j++) r[j] = _mm512_loadu_si512(x + (i0 + j) * sl + 2 * p0);
            transpose16(r);
            for (int i = 0; i < 16; i++) _mm512_storeu_si512(out + (p0 + i) * 2 * n + 2 * i0, r[i]);
        }
    }
}

/// out[p][c] = (x[2p][c], x[2p + 1][c]) for p < n / 2, c < width (out's rows 2 width values):
/// x as the B operand (k = n).
AMX_TARGET static void packRowPairs(const uint16_t *x, long sl, long n, long width, uint16_t *out) {
    for (long p = 0; p < n / 2; p++) {
        const uint16_t *a = x + 2 * p * sl;
        for (long c = 0; c < width; c += 16) _mm512_storeu_si512(out + p * 2 * width + 2 * c, interleaved(a + c, a + sl + c));
    }
}

/// out[c][i] = x[i][c] for i < n, c < width (out's rows n values): x^T as the A operand (k = n).
/// Rows paired into dwords, then 16 x 16 dword transposes.
AMX_TARGET static void packTransposed(const uint16_t *x, long sl, long n, long width, uint16_t *out) {
    for (long p0 = 0; p0 < n / 2; p0 += 16) {
        for (long c0 = 0; c0 < width; c0 += 16) {
            __m512i r[16];
            for (int j = 0; j < 16; j++) {
                const uint16_t *a = x + 2 * (p0 + j) * sl + c0;
                r[j] = interleaved(a, a + sl);
            }
            transpose16(r);
            for (int i = 0; i < 16; i++) _mm512_storeu_si512(out + (c0 + i) * n + 2 * p0, r[i]);
        }
    }
}

/// 16 bf16 values as float32 (exact).
AMX_TARGET static inline __m512 widen16(__m256i x) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(x), 16));
}

/// 16 float32 values rounded to bf16 (to nearest even; NaN stays NaN).
AMX_TARGET static inline __m256i narrow16(__m512 x) { return (__m256i)_mm512_cvtneps_pbh(x); }

/// Two rows of 16 bf16 values as pair dwords (a[i], b[i]).
AMX_TARGET static inline __m512i pairs16(__m256i a, __m256i b) {
    return _mm512_or_si512(_mm512_cvtepu16_epi32(a), _mm512_slli_epi32(_mm512_cvtepu16_epi32(b), 16));
}

/// 2^t to about 3e-6 (P is rounded to bf16, 2^-9, right after): t = n + f, |f| <= 1/2, 2^f by
/// its degree-5 Taylor polynomial, scaled by 2^n (scalef: 0 below the smallest subnormal). t
/// is clamped below at -150 (so that f stays finite); NaN stays NaN.
AMX_TARGET static inline __m512 exp2_16(__m512 t) {
    t = _mm512_max_ps(_mm512_set1_ps(-150.0f), t);
    t = _mm512_min_ps(_mm512_set1_ps(128.0f), t);
    __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(1.3333558146e-3f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6181291076e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5504108665e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022650696e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718056e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/// sum of a[e] b[e] over e < n (bf16, n a multiple of 16), in float32.
AMX_TARGET static inline float dot16(const uint16_t *a, const uint16_t *b, long n) {
    __m512 sum = _mm512_setzero_ps();
    for (long e = 0; e < n; e += 16) {
        sum = _mm512_fmadd_ps(widen16(_mm256_loadu_si256((const __m256i *)(a + e))),
                              widen16(_mm256_loadu_si256((const __m256i *)(b + e))), sum);
    }
    return _mm512_reduce_add_ps(sum);
}

/// Row r < 32 of a 32 x 32 float32 block (rows 32 apart) times w, rounded into 32 bf16 values at out.
AMX_TARGET static inline void storeRow(const float *block, int r, float w, uint16_t *out) {
    __m512 s = _mm512_set1_ps(w);
    __m512 lo = _mm512_mul_ps(_mm512_loadu_ps(block + 32 * r), s), hi = _mm512_mul_ps(_mm512_loadu_ps(block + 32 * r + 16), s);
    _mm512_storeu_si512(out, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
}

/// The 32 x 32 float32 block (rows 32 apart: column u, key t) transposed and rounded into rows
/// j0 + t, columns e0 + u, of head (b, h) of `out`.
AMX_TARGET static void storeTransposed(const float *block, camx_heads out, long b, long h, long j0, long e0) {
    for (int u = 0; u < 2; u++) {
        for (int t = 0; t < 2; t++) {
            __m512i r[16];
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_si512(block + (16 * u + i) * 32 + 16 * t);
            transpose16(r);
            for (int i = 0; i < 16; i++) {
                _mm256_storeu_si256((__m256i *)(headRow(out, b, h, j0 + 16 * t + i) + e0 + 16 * u), narrow16(_mm512_castsi512_ps(r[i])));
            }
        }
    }
}

AMX_TARGET void camx_attention_forward(camx_heads q, camx_heads k, camx_heads v, camx_heads out, float *lse, long heads,
                                       long lq, long lk, long d, long dv, float scale, void *scratch, long pairBegin, long pairEnd) {
    char *at = scratch;
    uint16_t *kt = take(&at, 2 * d * lk);   // K^T as pairs: [d/2][lk][2]
    uint16_t *vp = take(&at, 2 * lk * dv);  // V by pairs of keys: [lk/2][dv][2]
    float *s = take(&at, 4 * 32 * lk);      // a block's scaled scores
    uint16_t *p = take(&at, 2 * 32 * lk);   // and its P, bf16
    float *block = take(&at, 4 * 32 * 32);
    camx_configure_tiles();
    for (long pair = pairBegin; pair < pairEnd; pair++) {
        long b = pair / heads, h = pair % heads;
        packTransposedPairs(headRow(k, b, h, 0), k.sl, lk, d, kt);
        packRowPairs(headRow(v, b, h, 0), v.sl, lk, dv, vp);
        for (long i0 = 0; i0 < lq; i0 += 32) {
            const uint16_t *qa = headRow(q, b, h, i0);
            for (long j0 = 0; j0 < lk; j0 += 32) product32(qa, 2 * q.sl, 32, kt + 2 * j0, 4 * lk, 32 * lk, d / 32, s + j0, 4 * lk);
            float inverse[32];
            for (int r = 0; r < 32; r++) {
                const float *sr = s + r * lk;
                uint16_t *pr = p + r * lk;
                // The row's largest scaled score m (s max S, or s min S for s < 0), then
                // P = 2^(S s log2 e - m log2 e).
                __m512 top = _mm512_set1_ps(-INFINITY), bottom = _mm512_set1_ps(INFINITY);
                for (long j = 0; j < lk; j += 16) {
                    __m512 t = _mm512_loadu_ps(sr + j);
                    top = _mm512_max_ps(top, t);
                    bottom = _mm512_min_ps(bottom, t);
                }
                float m = scale * (scale >= 0 ? _mm512_reduce_max_ps(top) : _mm512_reduce_min_ps(bottom));
                __m512 c = _mm512_set1_ps(scale * log2e), mc = _mm512_set1_ps(m * log2e), sum = _mm512_setzero_ps();
                for (long j = 0; j < lk; j += 16) {
                    __m256i pb = narrow16(exp2_16(_mm512_fmsub_ps(_mm512_loadu_ps(sr + j), c, mc)));
                    _mm256_storeu_si256((__m256i *)(pr + j), pb);
                    sum = _mm512_add_ps(sum, widen16(pb));
                }
                float l = _mm512_reduce_add_ps(sum);
                inverse[r] = 1 / l;
                lse[pair * lq + i0 + r] = m + logf(l);
            }
            for (long c0 = 0; c0 < dv; c0 += 32) {
                product32(p, 2 * lk, 32, vp + 2 * c0, 4 * dv, 32 * dv, lk / 32, block, 128);
                for (int r = 0; r < 32; r++) storeRow(block, r, inverse[r], headRow(out, b, h, i0 + r) + c0);
            }
        }
    }
    _tile_release();
}

AMX_TARGET void camx_attention_backward(camx_heads q, camx_heads k, camx_heads v, camx_heads out, camx_heads gout,
                                        const float *lse, long heads, long lq, long lk, long d, long dv, float scale,
                                        camx_heads dq, camx_heads dk, camx_heads dvOut, void *scratch, long pairBegin, long pairEnd) {
    char *at = scratch;
    uint16_t *kt = take(&at, 2 * d * lk);    // K^T as pairs [d/2][lk][2], for S
    uint16_t *vt = take(&at, 2 * dv * lk);   // V^T as pairs, for dP
    uint16_t *kp = take(&at, 2 * lk * d);    // K by pairs of keys [lk/2][d][2], for dQ
    uint16_t *qt = take(&at, 2 * d * lq);    // Q^T [d][lq], for dK^T
    uint16_t *gt = take(&at, 2 * dv * lq);   // dO^T [dv][lq], for dV^T
    uint16_t *pp = take(&at, 2 * lq * lk);   // P by pairs of queries [lq/2][lk][2]
    uint16_t *sp = take(&at, 2 * lq * lk);   // dS likewise
    float *s = take(&at, 4 * 32 * lk);       // a block's scores
    float *dp = take(&at, 4 * 32 * lk);      // and dP
    uint16_t *ds = take(&at, 2 * 32 * lk);   // and dS's rows, bf16
    float *block = take(&at, 4 * 32 * 32);
    __m512 sc = _mm512_set1_ps(scale), c = _mm512_set1_ps(scale * log2e);
    camx_configure_tiles();
    for (long pair = pairBegin; pair < pairEnd; pair++) {
        long b = pair / heads, h = pair % heads;
        packTransposedPairs(headRow(k, b, h, 0), k.sl, lk, d, kt);
        packTransposedPairs(headRow(v, b, h, 0), v.sl, lk, dv, vt);
        packRowPairs(headRow(k, b, h, 0), k.sl, lk, d, kp);
        packTransposed(headRow(q, b, h, 0), q.sl, lq, d, qt);
        packTransposed(headRow(gout, b, h, 0), gout.sl, lq, dv, gt);
        for (long i0 = 0; i0 < lq; i0 += 32) {
            const uint16_t *qa = headRow(q, b, h, i0), *ga = headRow(gout, b, h, i0);
            for (long j0 = 0; j0 < lk; j0 += 32) {
                product32(qa, 2 * q.sl, 32, kt + 2 * j0, 4 * lk, 32 * lk, d / 32, s + j0, 4 * lk);
                product32(ga, 2 * gout.sl, 32, vt + 2 * j0, 4 * lk, 32 * lk, dv / 32, dp + j0, 4 * lk);
            }
            // P = exp(S s - lse) = 2^(S s log2 e - lse log2 e) and dS = P (dP - rowsum(dO O)) s,
            // two rows at a time (a pair row).
            for (int r = 0; r < 32; r += 2) {
                __m512 shift[2], delta[2];
                for (int t = 0; t < 2; t++) {
                    long i = i0 + r + t;
                    shift[t] = _mm512_set1_ps(lse[pair * lq + i] * log2e);
                    delta[t] = _mm512_set1_ps(dot16(headRow(gout, b, h, i), headRow(out, b, h, i), dv));
                }
                uint16_t *ppRow = pp + (i0 + r) * lk, *spRow = sp + (i0 + r) * lk;
                for (long j = 0; j < lk; j += 16) {
                    __m256i pb[2], db[2];
                    for (int t = 0; t < 2; t++) {
                        long e = (r + t) * lk + j;
                        __m512 pv = exp2_16(_mm512_fmsub_ps(_mm512_loadu_ps(s + e), c, shift[t]));
                        __m512 dsv = _mm512_mul_ps(_mm512_mul_ps(pv, _mm512_sub_ps(_mm512_loadu_ps(dp + e), delta[t])), sc);
                        pb[t] = narrow16(pv);
                        db[t] = narrow16(dsv);
                        _mm256_storeu_si256((__m256i *)(ds + e), db[t]);
                    }
                    _mm512_storeu_si512(ppRow + 2 * j, pairs16(pb[0], pb[1]));
                    _mm512_storeu_si512(spRow + 2 * j, pairs16(db[0], db[1]));
                }
            }
            for (long c0 = 0; c0 < d; c0 += 32) {
                product32(ds, 2 * lk, 32, kp + 2 * c0, 4 * d, 32 * d, lk / 32, block, 128);
                for (int r = 0; r < 32; r++) storeRow(block, r, 1, headRow(dq, b, h, i0 + r) + c0);
            }
        }
        for (long e0 = 0; e0 < dv; e0 += 32) {
            for (long j0 = 0; j0 < lk; j0 += 32) {
                product32(gt + e0 * lq, 2 * lq, 32, pp + 2 * j0, 4 * lk, 32 * lk, lq / 32, block, 128);
                storeTransposed(block, dvOut, b, h, j0, e0);
            }
        }
        for (long e0 = 0; e0 < d; e0 += 32) {
            for (long j0 = 0; j0 < lk; j0 += 32) {
                product32(qt + e0 * lq, 2 * lq, 32, sp + 2 * j0, 4 * lk, 32 * lk, lq / 32, block, 128);
                storeTransposed(block, dk, b, h, j0, e0);
            }
        }
    }
    _tile_release();
}

#else
long camx_attention_scratch(long lq, long lk, long d, long dv) { return 0; }
void camx_attention_forward(camx_heads q, camx_heads k, camx_heads v, camx_heads out, float *lse, long heads,
                            long lq, long lk, long d, long dv, float scale, void *scratch, long pairBegin, long pairEnd) {}
void camx_attention_backward(camx_heads q, camx_heads k, camx_heads v, camx_heads out, camx_heads gout,
                             const float *lse, long heads, long lq, long lk, long d, long dv, float scale,
                             camx_heads dq, camx_heads dk, camx_heads dvOut, void *scratch, long pairBegin, long pairEnd) {}
#endif
