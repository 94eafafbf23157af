import Foundation

/// Eigen-decomposition of a real symmetric matrix in Float64: A = V diag(values) V^T.
///
/// Cyclic Jacobi rotations (Jacobi 1846; the threshold strategy of Rutishauser 1971, as in
/// Numerical Recipes' `jacobi`): each rotation zeroes one off-diagonal element, and the sweeps
/// drive the off-diagonal mass to zero quadratically. Slower than Householder + QL but simple
/// and accurate to a few ulps of the largest eigenvalue, even for tiny or clustered ones;
/// about a second for d = 256. `FrechetDistance` no longer uses it (it needs eigenvalues alone
/// at d = 2048 and takes them from `LargeSymmetric`, Householder + QL); this one also gives
/// the eigenvectors of small matrices.
public struct SymmetricEigen: Sendable {
    /// The order of the matrix.
    public let dimension: Int
    /// The eigenvalues, ascending.
    public let values: [Double]
    /// The eigenvectors as columns of a row-major d x d matrix: column j belongs to values[j].
    public let vectors: [Double]

    /// Decomposes the symmetric row-major d x d matrix `matrix` (only its upper triangle is
    /// read). Throws when the input is not square or holds non-finite numbers.
    public init(_ matrix: [Double], dimension d: Int) throws {
        guard d >= 1, matrix.count == d * d else {
            throw MetricError("SymmetricEigen: \(matrix.count) values do not make a \(d) x \(d) matrix")
        }
        guard matrix.allSatisfy(\.isFinite) else {
            throw MetricError("SymmetricEigen: the matrix holds NaN or infinite values")
        }
        var a = matrix
        var v = [Double](repeating: 0, count: d * d)
        for i in 0..<d { v[i * d + i] = 1 }
        var diag = (0..<d).map { matrix[$0 * d + $0] }
        var b = diag
        var z = [Double](repeating: 0, count: d)
        var converged = d == 1
        a.withUnsafeMutableBufferPointer { a in
            v.withUnsafeMutableBufferPointer { v in
                for sweep in 1...100 {
                    var off = 0.0
                    for p in 0..<(d - 1) { for q in (p + 1)..<d { off += abs(a[p * d + q]) } }
                    if off == 0 { converged = true; return }
                    let threshold = sweep < 4 ? 0.2 * off / Double(d * d) : 0
                    for p in 0..<(d - 1) {
                        for q in (p + 1)..<d {
                            let apq = a[p * d + q]
                            let g = 100 * abs(apq)
                            if sweep > 4 && abs(diag[p]) + g == abs(diag[p]) && abs(diag[q]) + g == abs(diag[q]) {
                                a[p * d + q] = 0
                                continue
                            }
                            guard abs(apq) > threshold else { continue }
                            var h = diag[q] - diag[p]
                            let t: Double
                            if abs(h) + g == abs(h) {
                                t = apq / h
                            } else {
                                let theta = 0.5 * h / apq
                                let tt = 1 / (abs(theta) + (1 + theta * theta).squareRoot())
                                t = theta < 0 ? -tt : tt
                            }
                            let c = 1 / (1 + t * t).squareRoot(), s = t * c, tau = s / (1 + c)
                            h = t * apq
                            z[p] -= h; z[q] += h
                            diag[p] -= h; diag[q] += h
                            a[p * d + q] = 0
                            @inline(__always) func rotate(_ m: UnsafeMutableBufferPointer<Double>, _ i: Int, _ j: Int) {
                                let gg = m[i], hh = m[j]
                                m[i] = gg - s * (hh + gg * tau)
                                m[j] = hh + s * (gg - hh * tau)
                            }
                            for j in 0..<p { rotate(a, j * d + p, j * d + q) }
                            if p + 1 < q { for j in (p + 1)..<q { rotate(a, p * d + j, j * d + q) } }
                            if q + 1 < d { for j in (q + 1)..<d { rotate(a, p * d + j, q * d + j) } }
                            for j in 0..<d { rotate(v, j * d + p, j * d + q) }
                        }
                    }
                    for i in 0..<d { b[i] += z[i]; diag[i] = b[i]; z[i] = 0 }
                }
            }
        }
        guard converged else { throw MetricError("SymmetricEigen: Jacobi rotations did not converge in 100 sweeps (d = \(d))") }
        let order = (0..<d).sorted { diag[$0] < diag[$1] }
        dimension = d
        values = order.map { diag[$0] }
        var sorted = [Double](repeating: 0, count: d * d)
        for (column, j) in order.enumerated() { for i in 0..<d { sorted[i * d + column] = v[i * d + j] } }
        vectors = sorted
    }

    /// V diag(f(values)) V^T: a function of the matrix (its square root with f = sqrt).
    public func applying(_ f: (Double) -> Double) -> [Double] {
        let d = dimension
        let fv = values.map(f)
        var out = [Double](repeating: 0, count: d * d)
        vectors.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<d {
                    for j in i..<d {
                        var s = 0.0
                        for k in 0..<d { s += v[i * d + k] * fv[k] * v[j * d + k] }
                        o[i * d + j] = s
                        o[j * d + i] = s
                    }
                }
            }
        }
        return out
    }
}

/// A metric that cannot be computed from its inputs, with the reason.
public struct MetricError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
