/// Winograd F(4x4, 3x3)'s input and output tile transforms on 16 lanes (Tensors'
/// `WinogradConvolution.inputTile` / `outputTile` call these where the CPU has AVX-512 and a
/// tile has at least 16 channels). Same arithmetic in the same order as the 8-lane twins, so
/// the same bits. Activations are channels-last, float32 or bfloat16 (`bf16` flags); the
/// transforms are float32.
extension AVX512Kernels {
    typealias Six = (V, V, V, V, V, V)
    typealias Four = (V, V, V, V)

    /// Element i of a float32 or bfloat16 array, 16 lanes at a time.
    protocol Element {
        static func load(_ p: UnsafeRawPointer, _ i: Int, _ n: Int) -> V
        static func store(_ v: V, _ p: UnsafeMutableRawPointer, _ i: Int, _ n: Int)
    }

    enum F32: Element {
        @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int, _ n: Int) -> V {
            let f = p.assumingMemoryBound(to: Float.self) + i
            return n == 16 ? AVX512Kernels.load(f) : AVX512Kernels.load(f, n)
        }
        @inline(__always) static func store(_ v: V, _ p: UnsafeMutableRawPointer, _ i: Int, _ n: Int) {
            let f = p.assumingMemoryBound(to: Float.self) + i
            if n == 16 { AVX512Kernels.store(v, f) } else { AVX512Kernels.store(v, f, n) }
        }
    }

    /// bf16: widened exactly, narrowed to nearest even with NaN kept (lane loops: LLVM makes
    /// them vpmovzxwd and vpmovdw).
    enum BF16: Element {
        @inline(__always) static func load(_ p: UnsafeRawPointer, _ i: Int, _ n: Int) -> V {
            let h = p.assumingMemoryBound(to: UInt16.self) + i
            var u = SIMD16<UInt32>()
            if n == 16 {
                for j in 0..<16 { u[j] = UInt32(h[j]) &<< 16 }
            } else {
                for j in 0..<n { u[j] = UInt32(h[j]) &<< 16 }
            }
            return unsafeBitCast(u, to: V.self)
        }
        @inline(__always) static func store(_ v: V, _ p: UnsafeMutableRawPointer, _ i: Int, _ n: Int) {
            let r = roundedHigh(v) &>> 16
            let h = p.assumingMemoryBound(to: UInt16.self) + i
            if n == 16 {
                for j in 0..<16 { h[j] = UInt16(truncatingIfNeeded: r[j]) }
            } else {
                for j in 0..<n { h[j] = UInt16(truncatingIfNeeded: r[j]) }
            }
        }
    }

    /// B^T d: the input transform of six points.
    @inline(__always)
    static func winogradInput(_ d: Six) -> Six {
        let four = splat(4), five = splat(5), two = splat(2)
        let a = d.4 - d.2, b = d.3 - d.1
        return (four * d.0 - five * d.2 + d.4,
                d.3 + d.4 - four * (d.1 + d.2),
                four * (d.1 - d.2) + d.4 - d.3,
                two * b + a,
                a - two * b,
                four * d.1 - five * d.3 + d.5)
    }

    /// A^T m: the output transform of six points into four.
    @inline(__always)
    static func winogradOutput(_ m: Six) -> Four {
        let a = m.1 + m.2, b = m.1 - m.2, c = m.3 + m.4, d = m.3 - m.4
        return (m.0 + a + c, b + splat(2) * d, a + splat(4) * c, b + splat(8) * d + m.5)
    }

    /// Column q of a 6x6 transform, its point (i, q) from t.i, into elements (6 i + q) xiStride
    /// + offset of out.
    @inline(__always)
    static func storeColumn<O: Element>(_: O.Type, _ t: Six, _ out: UnsafeMutableRawPointer, column q: Int, xiStride: Int,
                                        offset: Int, lanes: Int) {
        O.store(t.0, out, q * xiStride + offset, lanes)
        O.store(t.1, out, (6 + q) * xiStride + offset, lanes)
        O.store(t.2, out, (12 + q) * xiStride + offset, lanes)
        O.store(t.3, out, (18 + q) * xiStride + offset, lanes)
        O.store(t.4, out, (24 + q) * xiStride + offset, lanes)
        O.store(t.5, out, (30 + q) * xiStride + offset, lanes)
    }

    /// V[ξ][·] = B^T d B of the 6x6 input patch at rows h0 ..< h0 + 6, columns w0 ..< w0 + 6 of
    /// the channels-last image starting at element `image` of x (h x w x c; outside reads
    /// zero): channel c0 of point ξ at element ξ xiStride + c0 of out. `scratch`: 36 vectors.
    @inline(never)
    public static func winogradInputTile(_ x: UnsafeRawPointer, bf16 xBF16: Bool, image: Int, c: Int, h: Int, w: Int, h0: Int, w0: Int,
                                         into out: UnsafeMutableRawPointer, bf16 outBF16: Bool, xiStride: Int,
                                         scratch: UnsafeMutableRawPointer) {
        let s = scratch.assumingMemoryBound(to: V.self)
        switch (xBF16, outBF16) {
        case (false, false): inputTile(F32.self, F32.self, x, image, c, h, w, h0, w0, out, xiStride, s)
        case (false, true): inputTile(F32.self, BF16.self, x, image, c, h, w, h0, w0, out, xiStride, s)
        case (true, false): inputTile(BF16.self, F32.self, x, image, c, h, w, h0, w0, out, xiStride, s)
        case (true, true): inputTile(BF16.self, BF16.self, x, image, c, h, w, h0, w0, out, xiStride, s)
        }
    }

    @inline(__always)
    static func inputTile<X: Element, O: Element>(_: X.Type, _: O.Type, _ x: UnsafeRawPointer, _ image: Int, _ c: Int, _ h: Int, _ w: Int,
                                                  _ h0: Int, _ w0: Int, _ out: UnsafeMutableRawPointer, _ xiStride: Int,
                                                  _ s: UnsafeMutablePointer<V>) {
        let inside = h0 >= 0 && h0 + 6 <= h && w0 >= 0 && w0 + 6 <= w
        var c0 = 0
        while c0 < c {
            let lanes = Swift.min(16, c - c0)
            // Rows: s[r][·] = (d B)[r] for each of the six input rows.
            for r in 0..<6 {
                let ih = h0 + r
                let row = image + (ih * w + w0) * c + c0
                var d: Six
                if inside && lanes == 16 {
                    d = (X.load(x, row, 16), X.load(x, row + c, 16), X.load(x, row + 2 * c, 16),
                         X.load(x, row + 3 * c, 16), X.load(x, row + 4 * c, 16), X.load(x, row + 5 * c, 16))
                } else {
                    func at(_ q: Int) -> V {
                        let iw = w0 + q
                        return ih >= 0 && ih < h && iw >= 0 && iw < w ? X.load(x, row + q * c, lanes) : V()
                    }
                    d = (at(0), at(1), at(2), at(3), at(4), at(5))
                }
                let t = winogradInput(d)
                (s[r * 6], s[r * 6 + 1], s[r * 6 + 2], s[r * 6 + 3], s[r * 6 + 4], s[r * 6 + 5]) = t
            }
            // Columns: V[ξ = (i, q)] = (B^T s)[i][q].
            for q in 0..<6 {
                storeColumn(O.self, winogradInput((s[q], s[6 + q], s[12 + q], s[18 + q], s[24 + q], s[30 + q])), out,
                            column: q, xiStride: xiStride, offset: c0, lanes: lanes)
            }
            c0 += lanes
        }
    }

    /// Y = A^T M A of one tile for output channels k0 ..< k1 (M of channel k at point ξ at
    /// from[ξ xiStride + k - k0]), plus bias, residual (y's type), then SiLU, into the
    /// channels-last y (k channels) at its rows y0 ..< y0 + rows and columns x0 ..< x0 + cols
    /// of image n (oh x ow). `scratch`: 24 vectors.
    @inline(never)
    public static func winogradOutputTile(_ from: UnsafePointer<Float>, xiStride: Int, k0: Int, k1: Int, k: Int, oh: Int, ow: Int,
                                          n: Int, y0: Int, x0: Int, rows: Int, cols: Int, into y: UnsafeMutableRawPointer, bf16: Bool,
                                          bias: UnsafePointer<Float>?, residual: UnsafeRawPointer?, silu: Bool,
                                          scratch: UnsafeMutableRawPointer) {
        let s = scratch.assumingMemoryBound(to: V.self)
        if bf16 {
            outputTile(BF16.self, from, xiStride, k0, k1, k, oh, ow, n, y0, x0, rows, cols, y, bias, residual, silu, s)
        } else {
            outputTile(F32.self, from, xiStride, k0, k1, k, oh, ow, n, y0, x0, rows, cols, y, bias, residual, silu, s)
        }
    }

    @inline(__always)
    static func outputTile<Y: Element>(_: Y.Type, _ from: UnsafePointer<Float>, _ xiStride: Int, _ k0: Int, _ k1: Int, _ k: Int,
                                       _ oh: Int, _ ow: Int, _ n: Int, _ y0: Int, _ x0: Int, _ rows: Int, _ cols: Int,
                                       _ y: UnsafeMutableRawPointer, _ bias: UnsafePointer<Float>?, _ residual: UnsafeRawPointer?,
                                       _ silu: Bool, _ s: UnsafeMutablePointer<V>) {
        var kc = k0
        while kc < k1 {
            let lanes = Swift.min(16, k1 - kc)
            let m = from + kc - k0
            // Rows: s[r][0..<4] = (m A)[r].
            for r in 0..<6 {
                let row = m + r * 6 * xiStride
                let t = winogradOutput((F32.load(row, 0, lanes), F32.load(row + xiStride, 0, lanes),
                                        F32.load(row + 2 * xiStride, 0, lanes), F32.load(row + 3 * xiStride, 0, lanes),
                                        F32.load(row + 4 * xiStride, 0, lanes), F32.load(row + 5 * xiStride, 0, lanes)))
                (s[r * 4], s[r * 4 + 1], s[r * 4 + 2], s[r * 4 + 3]) = t
            }
            let biasLanes = bias.map { F32.load($0 + kc, 0, lanes) } ?? V()
            // Columns: Y[·][q] = A^T s[·][q], then the epilogue.
            for q in 0..<cols {
                let t = winogradOutput((s[q], s[4 + q], s[8 + q], s[12 + q], s[16 + q], s[20 + q]))
                for r in 0..<rows {
                    let offset = ((n * oh + y0 + r) * ow + x0 + q) * k + kc
                    var value = (r == 0 ? t.0 : r == 1 ? t.1 : r == 2 ? t.2 : t.3) + biasLanes
                    if let residual { value += Y.load(residual, offset, lanes) }
                    if silu { value = value * (1 / (1 + exp(-value))) }
                    Y.store(value, y, offset, lanes)
                }
            }
            kc += lanes
        }
    }
}

extension AVX512Kernels {
    /// A y (four points into six): the transform of dL/dY in the weight gradient.
    @inline(__always)
    static func winogradGradient(_ y0: V, _ y1: V, _ y2: V, _ y3: V) -> Six {
        let even = y0 + y2, odd = y1 + y3
        let even4 = y0 + splat(4) * y2, odd2 = splat(2) * y1 + splat(8) * y3
        return (y0, even + odd, even - odd, even4 + odd2, even4 - odd2, y3)
    }

    /// W[ξ][·] = A dY A^T of one output tile's dL/dY (rows y0 ..< y0 + rows, columns
    /// x0 ..< x0 + cols of image n, oh x ow x k channels-last, float32 or `bf16`; zero outside),
    /// every channel: channel k0 of point ξ at out[ξ xiStride + k0] (float32). `scratch`: 24
    /// vectors.
    @inline(never)
    public static func winogradGradientTile(_ gy: UnsafeRawPointer, bf16: Bool, k: Int, oh: Int, ow: Int, n: Int, y0: Int, x0: Int,
                                            rows: Int, cols: Int, into out: UnsafeMutablePointer<Float>, xiStride: Int,
                                            scratch: UnsafeMutableRawPointer) {
        let s = scratch.assumingMemoryBound(to: V.self)
        if bf16 {
            gradientTile(BF16.self, gy, k, oh, ow, n, y0, x0, rows, cols, out, xiStride, s)
        } else {
            gradientTile(F32.self, gy, k, oh, ow, n, y0, x0, rows, cols, out, xiStride, s)
        }
    }

    @inline(__always)
    static func gradientTile<X: Element>(_: X.Type, _ gy: UnsafeRawPointer, _ k: Int, _ oh: Int, _ ow: Int, _ n: Int, _ y0: Int,
                                         _ x0: Int, _ rows: Int, _ cols: Int, _ out: UnsafeMutablePointer<Float>, _ xiStride: Int,
                                         _ s: UnsafeMutablePointer<V>) {
        var k0 = 0
        while k0 < k {
            let lanes = Swift.min(16, k - k0)
            // Rows: s[r][j] = (dY A^T)[r][j] for the four rows of dY.
            for r in 0..<4 {
                var d = (V(), V(), V(), V())
                if r < rows {
                    let row = ((n * oh + y0 + r) * ow + x0) * k + k0
                    if cols == 4 && lanes == 16 {
                        d = (X.load(gy, row, 16), X.load(gy, row + k, 16), X.load(gy, row + 2 * k, 16), X.load(gy, row + 3 * k, 16))
                    } else {
                        func at(_ q: Int) -> V { q < cols ? X.load(gy, row + q * k, lanes) : V() }
                        d = (at(0), at(1), at(2), at(3))
                    }
                }
                let t = winogradGradient(d.0, d.1, d.2, d.3)
                (s[r * 6], s[r * 6 + 1], s[r * 6 + 2], s[r * 6 + 3], s[r * 6 + 4], s[r * 6 + 5]) = t
            }
            // Columns: W[ξ = (i, j)] = (A s)[i][j].
            for j in 0..<6 {
                storeColumn(F32.self, winogradGradient(s[j], s[6 + j], s[12 + j], s[18 + j]), out, column: j, xiStride: xiStride,
                            offset: k0, lanes: lanes)
            }
            k0 += lanes
        }
    }
}
