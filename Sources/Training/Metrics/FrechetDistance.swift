/// The Fréchet distance between two Gaussians fitted to feature sets (Dowson & Landau 1982;
/// FID, Heusel et al. 2017, eq. 6):
///
///   d^2 = ||mu1 - mu2||^2 + Tr(C1 + C2 - 2 (C1 C2)^{1/2})
///
/// The trace of the matrix square root is computed without a non-symmetric square root
/// (pytorch-fid uses scipy.linalg.sqrtm on C1 C2, which can return complex parts and needs an
/// epsilon retry): (C1 C2)^{1/2} is similar to (C1^{1/2} C2 C1^{1/2})^{1/2}, a symmetric PSD
/// matrix, so Tr((C1 C2)^{1/2}) = sum_i sqrt(lambda_i(C1^{1/2} C2 C1^{1/2})). Both square roots
/// come from a symmetric eigen-decomposition in Float64; eigenvalues that rounding makes
/// slightly negative are clamped to 0.
public enum FrechetDistance {
    /// The Fréchet distance between the Gaussians N(mu1, C1) and N(mu2, C2).
    public static func distance(_ a: FeatureStatistics, _ b: FeatureStatistics) throws -> Double {
        guard a.dimension == b.dimension else {
            throw MetricError("Fréchet distance: feature dimensions differ (\(a.dimension) and \(b.dimension))")
        }
        let d = a.dimension
        var meanTerm = 0.0
        for i in 0..<d { let x = a.mean[i] - b.mean[i]; meanTerm += x * x }
        var traces = 0.0
        for i in 0..<d { traces += a.covariance[i * d + i] + b.covariance[i * d + i] }
        return meanTerm + traces - 2 * (try traceOfSquareRootOfProduct(a.covariance, b.covariance, dimension: d))
    }

    /// Tr((C1 C2)^{1/2}) for symmetric PSD C1, C2 (row-major d x d).
    public static func traceOfSquareRootOfProduct(_ c1: [Double], _ c2: [Double], dimension d: Int) throws -> Double {
        let root1 = try SymmetricEigen(c1, dimension: d).applying { $0 > 0 ? $0.squareRoot() : 0 }
        // M = root1 * c2 * root1, symmetrised against rounding.
        let t = multiply(root1, c2, d)
        var m = multiply(t, root1, d)
        for i in 0..<d {
            for j in (i + 1)..<d {
                let s = 0.5 * (m[i * d + j] + m[j * d + i])
                m[i * d + j] = s
                m[j * d + i] = s
            }
        }
        return try SymmetricEigen(m, dimension: d).values.reduce(0) { $0 + ($1 > 0 ? $1.squareRoot() : 0) }
    }

    /// Row-major d x d product.
    static func multiply(_ a: [Double], _ b: [Double], _ d: Int) -> [Double] {
        var out = [Double](repeating: 0, count: d * d)
        a.withUnsafeBufferPointer { a in
            b.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { o in
                    for i in 0..<d {
                        for k in 0..<d {
                            let x = a[i * d + k]
                            if x == 0 { continue }
                            for j in 0..<d { o[i * d + j] += x * b[k * d + j] }
                        }
                    }
                }
            }
        }
        return out
    }
}
