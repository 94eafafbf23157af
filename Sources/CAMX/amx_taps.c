// AMX kernels for tap products: see include/CAMX.h.
#include "CAMX.h"
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "amx_internal.h"

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

int camx_bf16_available(void) {
    static int state = -1;
    if (state >= 0) return state;
    unsigned a, b, c, d;
    unsigned a1, b1, c1, d1;
    // AMX-BF16 and AMX-TILE (leaf 7 EDX bits 22, 24); AVX512-BF16 (leaf 7.1 EAX bit 5), whose
    // rounding the attention kernels use (every CPU with AMX has it).
    int ok = __get_cpuid_count(7, 0, &a, &b, &c, &d) && (d & (1u << 22)) && (d & (1u << 24))
        && __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 & (1u << 5))
        && syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
    state = ok;
    return ok;
}

/// The row of channels at grid point q of the padded input, NULL on the padding.
static inline const uint16_t *inputPoint(const uint16_t *x, long q, int n, int h, int w, int c, int padH, int padW,
                                         int hp, int wp) {
    long image = q / ((long)hp * wp), rest = q % ((long)hp * wp);
    int y = (int)(rest / wp) - padH, xx = (int)(rest % wp) - padW;
    if (image >= n || y < 0 || y >= h || xx < 0 || xx >= w) return 0;
    return x + ((image * h + y) * w + xx) * c;
}

AMX_TARGET void camx_pack_input(const uint16_t *x, int n, int h, int w, int c, int padH, int padW, int hp, int wp,
                                long rows, uint16_t *even, uint16_t *odd, long rowBegin, long rowEnd) {
    for (long r = rowBegin; r < rowEnd; r++) {
        const uint16_t *p0 = inputPoint(x, 2 * r, n, h, w, c, padH, padW, hp, wp);
        const uint16_t *p1 = inputPoint(x, 2 * r + 1, n, h, w, c, padH, padW, hp, wp);
        const uint16_t *p2 = odd ? inputPoint(x, 2 * r + 2, n, h, w, c, padH, padW, hp, wp) : 0;
        for (int cb = 0; cb < c / 16; cb++) {
            int ch = 16 * cb;
            long at = ((long)cb * rows + r) * 32;
            _mm512_storeu_si512(even + at, interleaved(p0 ? p0 + ch : 0, p1 ? p1 + ch : 0));
            if (odd) _mm512_storeu_si512(odd + at, interleaved(p1 ? p1 + ch : 0, p2 ? p2 + ch : 0));
        }
    }
}

/// The row of output channels at grid point q, NULL off the output positions.
static inline const uint16_t *outputPoint(const uint16_t *gy, long q, int n, int oh, int ow, int o, int hp, int wp) {
    long image = q / ((long)hp * wp), rest = q % ((long)hp * wp);
    int y = (int)(rest / wp), xx = (int)(rest % wp);
    if (image >= n || y >= oh || xx >= ow) return 0;
    return gy + ((image * oh + y) * ow + xx) * o;
}

AMX_TARGET void camx_pack_output_gradient(const uint16_t *gy, int n, int oh, int ow, int o, int hp, int wp,
                                          long kBlocks, uint16_t *tiles, long kbBegin, long kbEnd, float *sums) {
    for (long kb = kbBegin; kb < kbEnd; kb++) {
        const uint16_t *points[32];
        for (int k = 0; k < 32; k++) points[k] = outputPoint(gy, 32 * kb + k, n, oh, ow, o, hp, wp);
        for (int ob = 0; ob < o / 16; ob++) {
            int ch = 16 * ob;
            // Row j: grid points 2j and 2j + 1 paired per channel; transposed: row i, channel i's 32 points.
            __m512i r[16];
            __m512 sum = _mm512_setzero_ps();
            for (int j = 0; j < 16; j++) {
                const uint16_t *a = points[2 * j], *b = points[2 * j + 1];
                __m512i lo = widened(a ? a + ch : 0), hi = widened(b ? b + ch : 0);
                r[j] = _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
                // The bias gradient's sums: bf16 is float32's upper half.
                sum = _mm512_add_ps(sum, _mm512_add_ps(_mm512_castsi512_ps(_mm512_slli_epi32(lo, 16)),
                                                       _mm512_castsi512_ps(_mm512_slli_epi32(hi, 16))));
            }
            if (sums) _mm512_storeu_ps(sums + ch, _mm512_add_ps(_mm512_loadu_ps(sums + ch), sum));
            transpose16(r);
            uint16_t *tile = tiles + ((long)ob * kBlocks + kb) * 512;
            for (int i = 0; i < 16; i++) _mm512_storeu_si512(tile + 32 * i, r[i]);
        }
    }
}

/// A unit's finished 32 x 32 block of tap t (in tiles 0-3) into the OIHW weight gradient:
/// through a float32 block in L1, each row's 32 values `taps` apart.
AMX_TARGET static inline void storeOIHW(float *oihw, int c, int taps, int t, int ob, int cb) {
    float block[32 * 32] __attribute__((aligned(64)));
    _tile_stored(0, block, 128);
    _tile_stored(1, block + 16, 128);
    _tile_stored(2, block + 512, 128);
    _tile_stored(3, block + 528, 128);
    for (int i = 0; i < 32; i++) {
        float *row = oihw + ((long)(32 * ob + i) * c + 32 * cb) * taps + t;
        for (int j = 0; j < 32; j++) row[(long)j * taps] = block[32 * i + j];
    }
}

AMX_TARGET void camx_tap_products(const uint16_t *tiles, const uint16_t *even, const uint16_t *odd, long rows, long kBlocks,
                                  int o, int c, int taps, const int *shifts, float *out, float *oihw, int unitBegin, int unitEnd) {
    camx_configure_tiles();
    int cBlocks = c / 32;
    long ldc = (long)c * 4;
    // Grid points in chunks whose operands (about 1 MB: A tiles of every output channel, both
    // copies of x) stay in L2 while every unit of the thread passes over them: a unit's sums
    // go out to `out` and come back between chunks.
    long chunk = (1L << 20) / (64L * (o + 2L * c));
    if (chunk < 16) chunk = 16;
    for (long k0 = 0; k0 < kBlocks; k0 += chunk) {
        long k1 = k0 + chunk < kBlocks ? k0 + chunk : kBlocks;
        for (int unit = unitBegin; unit < unitEnd; unit++) {
            int item = unit / taps, t = unit % taps, s = shifts[t];
            int ob = item / cBlocks, cb = item % cBlocks;
            const uint16_t *a0 = tiles + ((long)(2 * ob) * kBlocks + k0) * 512, *a1 = a0 + kBlocks * 512;
            const uint16_t *b0 = ((s & 1) ? odd : even) + ((long)(2 * cb) * rows + (s >> 1) + 16 * k0) * 32, *b1 = b0 + rows * 32;
            float *dst = out + ((long)t * o + 32 * ob) * c + 32 * cb;
            if (k0 == 0) {
                _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
            } else {
                _tile_loadd(0, dst, ldc);
                _tile_loadd(1, dst + 16, ldc);
                _tile_loadd(2, dst + 16L * c, ldc);
                _tile_loadd(3, dst + 16L * c + 16, ldc);
            }
            // Loads interleaved with the products that need them: a tile is not reloaded
            // before the products reading it have started (tile registers are not renamed).
            for (long kb = k0; kb < k1; kb++) {
                _tile_loadd(4, a0, 64);
                _tile_loadd(6, b0, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_loadd(7, b1, 64);
                _tile_dpbf16ps(1, 4, 7);
                _tile_loadd(5, a1, 64);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
                a0 += 512; a1 += 512; b0 += 512; b1 += 512;
            }
            if (k1 == kBlocks && oihw) {
                storeOIHW(oihw, c, taps, t, ob, cb);
                continue;
            }
            _tile_stored(0, dst, ldc);
            _tile_stored(1, dst + 16, ldc);
            _tile_stored(2, dst + 16L * c, ldc);
            _tile_stored(3, dst + 16L * c + 16, ldc);
        }
    }
    _tile_release();
}

#else
int camx_bf16_available(void) { return 0; }
void camx_pack_input(const uint16_t *x, int n, int h, int w, int c, int padH, int padW, int hp, int wp,
                     long rows, uint16_t *even, uint16_t *odd, long rowBegin, long rowEnd) {}
void camx_pack_output_gradient(const uint16_t *gy, int n, int oh, int ow, int o, int hp, int wp,
                               long kBlocks, uint16_t *tiles, long kbBegin, long kbEnd, float *sums) {}
void camx_tap_products(const uint16_t *tiles, const uint16_t *even, const uint16_t *odd, long rows, long kBlocks,
                       int o, int c, int taps, const int *shifts, float *out, float *oihw, int unitBegin, int unitEnd) {}
#endif
