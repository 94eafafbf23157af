// Diffuse's own AMX kernels (bf16 tiles, float32 sums): the weight gradients of stride-1
// convolutions as one product per kernel tap (see TapGEMMConvolution+AMX.swift), and attention
// one head at a time with the head's scores in cache (see AMXAttention.swift). The kernels are
// compiled for AMX and AVX-512 by function attributes only: call them where
// `camx_bf16_available()` said yes; the rest of the library never runs AMX or AVX-512 code.
#pragma once
#include <stdint.h>

/// 1 where the CPU has AMX-TILE, AMX-BF16 and AVX512-BF16 and the kernel lets this process use
/// the tile state (asked for once with arch_prctl); else 0.
int camx_bf16_available(void);

/// The input x (bf16, channels-last [n][h][w][c], c a multiple of 16) on the zero-padded grid
/// of n images of hp x wp points (the image at rows padH.., columns padW..), as AMX B tiles:
/// pairs of consecutive grid points interleaved per channel, in blocks of 16 channels:
///   even[(cb rows + r) 32 + 2 i + j] = grid[2 r + j][16 cb + i],
///   odd [(cb rows + r) 32 + 2 i + j] = grid[2 r + 1 + j][16 cb + i]   (odd may be NULL),
/// for pair rows r in [rowBegin, rowEnd) of `rows` (points past the grid are zero).
void camx_pack_input(const uint16_t *x, int n, int h, int w, int c, int padH, int padW, int hp, int wp,
                     long rows, uint16_t *even, uint16_t *odd, long rowBegin, long rowEnd);

/// dL/dy (bf16, channels-last [n][oh][ow][o], o a multiple of 16) on the same grid (output
/// point (y, x) of image m at grid point m hp wp + y wp + x, zero elsewhere) as AMX A tiles
/// of 16 channels x 32 grid points, each tile's rows contiguous:
///   tiles[((ob kBlocks + kb) 16 + i) 32 + k] = dy[grid point 32 kb + k][16 ob + i]
/// for blocks of points kb in [kbBegin, kbEnd) of `kBlocks`; and, where `sums` is not NULL,
/// adds each channel's sum of dy over those points to sums[0..<o) (the bias gradient).
void camx_pack_output_gradient(const uint16_t *gy, int n, int oh, int ow, int o, int hp, int wp,
                               long kBlocks, uint16_t *tiles, long kbBegin, long kbEnd, float *sums);

/// For the units in [unitBegin, unitEnd), a unit being a tap t and a 32 x 32 block (ob, cb)
/// of the result (unit = (ob (c / 32) + cb) taps + t):
///   out[(t o + oc) c + ic] = sum over grid points k < 32 kBlocks of dy[k][oc] grid[k + shifts[t]][ic]
/// from the packed forms above (o and c multiples of 32; odd non-NULL if a shift is odd). With
/// `oihw`, each unit's finished sums go there instead, as oihw[(oc c + ic) taps + t] (the
/// weight gradient's layout; `out` then holds only sums carried between chunks of grid points).
void camx_tap_products(const uint16_t *tiles, const uint16_t *even, const uint16_t *odd, long rows, long kBlocks,
                       int o, int c, int taps, const int *shifts, float *out, float *oihw, int unitBegin, int unitEnd);

/// One operand of attention, bf16: element e of row i of head (b, h) at
/// base[b sb + h sh + i sl + e] (unit stride along a row).
typedef struct {
    uint16_t *base;
    long sb, sh, sl;
} camx_heads;

/// Bytes of scratch one thread needs for `camx_attention_forward` and `_backward` on heads of
/// lq queries, lk keys, head size d and value size dv (64-byte aligned scratch).
long camx_attention_scratch(long lq, long lk, long d, long dv);

/// Attention of the heads pair = b h_count + h in [pairBegin, pairEnd): out = softmax(s Q K^T) V
/// (bf16, each row rounded once) and the log-sum-exp of each row's scaled scores,
/// lse[pair lq + i]. P is rounded to bf16 for the product with V, and its row sums are those
/// of the rounded values. lq, lk, d and dv multiples of 32.
void camx_attention_forward(camx_heads q, camx_heads k, camx_heads v, camx_heads out, float *lse, long heads,
                            long lq, long lk, long d, long dv, float scale, void *scratch, long pairBegin, long pairEnd);

/// Gradients (bf16) of attention for those heads from dO `gout`, the forward's bf16 `out` and
/// `lse`: P = exp(s Q K^T - lse) again, dV = P^T dO, dS = P (dO V^T - rowsum(dO O)) s,
/// dQ = dS K, dK = dS^T Q, with P and dS rounded to bf16 as operands and float32 sums.
/// Needs lq lk of scratch per head (P and dS in cache); sizes as the forward's.
void camx_attention_backward(camx_heads q, camx_heads k, camx_heads v, camx_heads out, camx_heads gout,
                             const float *lse, long heads, long lq, long lk, long d, long dv, float scale,
                             camx_heads dq, camx_heads dk, camx_heads dvOut, void *scratch, long pairBegin, long pairEnd);
