import Testing
@testable import Tensors

/// Max and average pooling with padding against hand-computed windows and a direct loop over
/// the definition (F.max_pool2d / F.avg_pool2d with count_include_pad true and false).
@Suite struct PoolingTests {
    /// y[i, j] over the window rows i*s-p ..< i*s-p+k, columns likewise, clipped to the input.
    func reference(_ x: [Float], c: Int, h: Int, w: Int, k: Int, s: Int, p: Int, max: Bool, includePad: Bool) -> [Float] {
        let oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1
        var out = [Float]()
        for ch in 0..<c {
            for i in 0..<oh {
                for j in 0..<ow {
                    var acc: Float = max ? -.infinity : 0
                    var inside = 0
                    for u in (i * s - p)..<(i * s - p + k) where u >= 0 && u < h {
                        for v in (j * s - p)..<(j * s - p + k) where v >= 0 && v < w {
                            let value = x[(ch * h + u) * w + v]
                            acc = max ? Swift.max(acc, value) : acc + value
                            inside += 1
                        }
                    }
                    out.append(max ? acc : acc / Float(includePad ? k * k : inside))
                }
            }
        }
        return out
    }

    @Test func handComputedWindows() {
        let x = Tensor((0..<16).map(Float.init), shape: [1, 1, 4, 4])
        // Corner (0, 0) with padding 1: the in-image window is 0, 1, 4, 5.
        let exclude = x.avgPooled2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false).contiguous().scalars
        #expect(exclude[0] == 2.5)
        #expect(exclude[5] == 5)  // (1, 1): the full window 0, 1, 2, 4, 5, 6, 8, 9, 10
        let include = x.avgPooled2d(kernel: 3, stride: 1, padding: 1, countIncludePad: true).contiguous().scalars
        #expect(abs(include[0] - 10 / 9) < 1e-6)
        let maxPadded = x.maxPooled2d(kernel: 3, stride: 1, padding: 1).contiguous().scalars
        #expect(maxPadded[0] == 5 && maxPadded[5] == 10 && maxPadded[15] == 15)
        #expect(x.maxPooled2d(kernel: 3, stride: 2).contiguous().scalars == [10])
    }

    @Test(arguments: [(3, 1, 1), (3, 2, 0), (3, 2, 1), (8, 8, 0)])
    func matchesTheDefinition(_ args: (Int, Int, Int)) {
        let (k, s, p) = args
        // 11 channels: one full group of 8 lanes and a tail; 2 images.
        let (n, c, h, w) = (2, 11, 9, 10)
        let x = PhiloxGenerator(seed: 7).normal([n, c, h, w])
        let values = x.scalars
        for (isMax, includePad) in [(true, false), (false, true), (false, false)] {
            let y = isMax ? x.maxPooled2d(kernel: k, stride: s, padding: p)
                          : x.avgPooled2d(kernel: k, stride: s, padding: p, countIncludePad: includePad)
            #expect(y.isChannelsLast)
            var expected = [Float]()
            for b in 0..<n {
                expected += reference(Array(values[(b * c * h * w)..<((b + 1) * c * h * w)]), c: c, h: h, w: w,
                                      k: k, s: s, p: p, max: isMax, includePad: includePad)
            }
            let got = y.contiguous().scalars
            #expect(got.count == expected.count)
            let worst = zip(got, expected).map { abs($0 - $1) }.max() ?? 0
            #expect(worst < 1e-5, "k \(k) s \(s) p \(p) max \(isMax) includePad \(includePad): worst \(worst)")
        }
    }
}
