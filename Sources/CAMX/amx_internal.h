// What the AMX kernels share: the target attribute they are compiled under, the tile
// configuration (eight tiles of 16 rows x 64 bytes) and the AVX-512 helpers that pack operands.
// Included only by the kernel files, inside their `#if defined(__x86_64__)`.
#pragma once
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define AMX_TARGET __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")))

/// The 16 bf16 values at p widened to 32 bits (zero for NULL).
AMX_TARGET static inline __m512i widened(const uint16_t *p) {
    return p ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)) : _mm512_setzero_si512();
}

/// Pairs (a[i], b[i]) as 16 dwords: a tile row of the VNNI form.
AMX_TARGET static inline __m512i interleaved(const uint16_t *a, const uint16_t *b) {
    return _mm512_or_si512(widened(a), _mm512_slli_epi32(widened(b), 16));
}

/// Transposes a 16 x 16 matrix of dwords held in r[0..<16] (rows) in place.
AMX_TARGET static inline void transpose16(__m512i r[16]) {
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    // u[4i + j], 128-bit lane l: column 4l + j of rows 4i..<4i + 4.
    for (int i = 0; i < 4; i++) {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int j = 0; j < 4; j++) {
        __m512i s0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x88), s1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x88);
        __m512i d0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xdd), d1 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xdd);
        r[j] = _mm512_shuffle_i32x4(s0, s1, 0x88);
        r[8 + j] = _mm512_shuffle_i32x4(s0, s1, 0xdd);
        r[4 + j] = _mm512_shuffle_i32x4(d0, d1, 0x88);
        r[12 + j] = _mm512_shuffle_i32x4(d0, d1, 0xdd);
    }
}

struct TileConfig {
    uint8_t palette, startRow, reserved[14];
    uint16_t bytesPerRow[16];
    uint8_t rows[16];
};

/// Every tile 16 rows of 64 bytes: bf16 operands of 16 x 32, float32 sums of 16 x 16.
AMX_TARGET static inline void camx_configure_tiles(void) {
    struct TileConfig config;
    memset(&config, 0, sizeof config);
    config.palette = 1;
    for (int i = 0; i < 8; i++) { config.bytesPerRow[i] = 64; config.rows[i] = 16; }
    _tile_loadconfig(&config);
}
