/// Full-reference image quality: PSNR and SSIM of images against the originals, for
/// super-resolution (SR3 against bicubic). Images are [C, H, W] planes of values in [0, 1]
/// (data range 1).
public enum ImageQuality {
    /// Peak signal-to-noise ratio 10 log10(1 / MSE) in dB (infinite for equal images).
    public static func psnr(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count && !a.isEmpty, "ImageQuality.psnr: sizes \(a.count) and \(b.count)")
        var sum = 0.0
        for i in a.indices { let d = Double(a[i]) - Double(b[i]); sum += d * d }
        let mse = sum / Double(a.count)
        return mse == 0 ? .infinity : 10 * (1 / mse).log10
    }

    /// SSIM (Wang et al. 2004, eq. 13) with their constants K1 = 0.01, K2 = 0.03 and an 11x11
    /// Gaussian window of sigma 1.5 over every position where it fits inside the image (as
    /// torchmetrics and pytorch-msssim compute it, population statistics): the mean over
    /// positions and channels of
    ///
    ///     (2 mu_a mu_b + C1)(2 s_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(s_a^2 + s_b^2 + C2)).
    ///
    /// Images smaller than the window use a window of their smaller side (odd).
    public static func ssim(_ a: [Float], _ b: [Float], channels: Int, height: Int, width: Int) -> Double {
        precondition(a.count == b.count && a.count == channels * height * width, "ImageQuality.ssim: sizes do not match [\(channels), \(height), \(width)]")
        let side = Swift.min(height, width)
        let size = Swift.min(11, side % 2 == 1 ? side : side - 1)
        let window = gaussian(size: size, sigma: 1.5)
        let (c1, c2) = (0.01 * 0.01, 0.03 * 0.03)
        var total = 0.0, count = 0
        for c in 0..<channels {
            let base = c * height * width
            for y in 0...(height - size) {
                for x in 0...(width - size) {
                    var (ma, mb, aa, bb, ab) = (0.0, 0.0, 0.0, 0.0, 0.0)
                    for j in 0..<size {
                        for i in 0..<size {
                            let w = window[j * size + i]
                            let p = base + (y + j) * width + x + i
                            let (va, vb) = (Double(a[p]), Double(b[p]))
                            ma += w * va; mb += w * vb; aa += w * va * va; bb += w * vb * vb; ab += w * va * vb
                        }
                    }
                    let (sa, sb, sab) = (aa - ma * ma, bb - mb * mb, ab - ma * mb)
                    total += (2 * ma * mb + c1) * (2 * sab + c2) / ((ma * ma + mb * mb + c1) * (sa + sb + c2))
                    count += 1
                }
            }
        }
        return total / Double(count)
    }

    /// A normalised separable Gaussian window, size x size, row-major.
    static func gaussian(size: Int, sigma: Double) -> [Double] {
        let c = Double(size - 1) / 2
        let g = (0..<size).map { i -> Double in let d = Double(i) - c; return (-(d * d) / (2 * sigma * sigma)).exp }
        let s = g.reduce(0, +)
        let n = g.map { $0 / s }
        return (0..<(size * size)).map { n[$0 / size] * n[$0 % size] }
    }
}

private extension Double {
    var log10: Double { Foundation.log10(self) }
    var exp: Double { Foundation.exp(self) }
}

import Foundation
