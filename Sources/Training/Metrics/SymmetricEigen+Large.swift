import Tensors

/// Eigenvalues and factorisations for the 2048 x 2048 covariances of Inception features, where
/// cyclic Jacobi (O(d^3) per sweep, ~10 sweeps: minutes at d = 2048) is too slow.
enum LargeSymmetric {
    /// The eigenvalues (ascending) of the symmetric row-major n x n `matrix` (both triangles
    /// read): Householder reduction to tridiagonal form, then the implicit QL method with
    /// Wilkinson shifts (Numerical Recipes 3rd ed., `tred2` without eigenvectors and `tqli`;
    /// Golub & Van Loan 8.3). About (4/3) n^3 flops, rows of the trailing matrix streamed.
    static func eigenvalues(_ matrix: [Double], dimension n: Int) throws -> [Double] {
        guard n >= 1, matrix.count == n * n else { throw MetricError("eigenvalues: \(matrix.count) values do not make a \(n) x \(n) matrix") }
        guard matrix.allSatisfy(\.isFinite) else { throw MetricError("eigenvalues: the matrix holds NaN or infinite values") }
        var a = matrix
        var d = [Double](repeating: 0, count: n), e = [Double](repeating: 0, count: n)
        a.withUnsafeMutableBufferPointer { a in
            e.withUnsafeMutableBufferPointer { e in
                // Householder: row i (from the last) of the trailing (i+1) x (i+1) block is
                // reflected onto its sub-diagonal element; the full symmetric block is updated so
                // that every product reads rows.
                for i in stride(from: n - 1, to: 0, by: -1) {
                    let l = i - 1
                    let ai = a.baseAddress! + i * n
                    var scale = 0.0
                    for k in 0...l { scale += abs(ai[k]) }
                    if l == 0 || scale == 0 { e[i] = ai[l]; continue }
                    var h = 0.0
                    for k in 0...l { ai[k] /= scale; h += ai[k] * ai[k] }
                    let f = ai[l]
                    let g = f >= 0 ? -h.squareRoot() : h.squareRoot()
                    e[i] = scale * g
                    h -= f * g
                    ai[l] = f - g
                    // p = A u / h (into e[0...l]), K = u.p / 2h, q = p - K u.
                    let rows = l + 1
                    let u = UnsafePointer(ai)
                    let ep = e.baseAddress!, ap = a.baseAddress!
                    Parallel.forEach(rows, cost: rows) { j in
                        let aj = ap + j * n
                        var s = 0.0
                        for k in 0..<rows { s += aj[k] * u[k] }
                        ep[j] = s / h
                    }
                    var uDotP = 0.0
                    for j in 0..<rows { uDotP += e[j] * u[j] }
                    let hh = uDotP / (h + h)
                    for j in 0..<rows { e[j] -= hh * u[j] }
                    // A -= u q^T + q u^T on the whole block (keeps it symmetric).
                    Parallel.forEach(rows, cost: rows) { j in
                        let aj = ap + j * n
                        let (uj, qj) = (u[j], ep[j])
                        for k in 0..<rows { aj[k] -= uj * ep[k] + qj * u[k] }
                    }
                }
                e[0] = 0
            }
        }
        for i in 0..<n { d[i] = a[i * n + i] }
        // Implicit QL on the tridiagonal matrix (diagonal d, sub-diagonal e shifted down).
        for i in 1..<max(n, 1) { e[i - 1] = e[i] }
        e[n - 1] = 0
        for l in 0..<n {
            var iterations = 0
            var m = l
            repeat {
                m = l
                while m < n - 1 {
                    let dd = abs(d[m]) + abs(d[m + 1])
                    if abs(e[m]) <= Double.ulpOfOne * dd { break }
                    m += 1
                }
                if m != l {
                    iterations += 1
                    guard iterations <= 60 else { throw MetricError("eigenvalues: the QL iteration did not converge (n = \(n))") }
                    var g = (d[l + 1] - d[l]) / (2 * e[l])
                    var r = (g * g + 1).squareRoot()
                    g = d[m] - d[l] + e[l] / (g + (g >= 0 ? r : -r))
                    var s = 1.0, c = 1.0, p = 0.0
                    var i = m - 1
                    var deflated = false
                    while i >= l {
                        let f = s * e[i], b = c * e[i]
                        r = (f * f + g * g).squareRoot()
                        e[i + 1] = r
                        if r == 0 {
                            d[i + 1] -= p
                            e[m] = 0
                            deflated = true
                            break
                        }
                        s = f / r
                        c = g / r
                        g = d[i + 1] - p
                        r = (d[i] - g) * s + 2 * c * b
                        p = s * r
                        d[i + 1] = g + p
                        g = c * r - b
                        i -= 1
                    }
                    if deflated { continue }
                    d[l] -= p
                    e[l] = g
                    e[m] = 0
                }
            } while m != l
        }
        return d.sorted()
    }

    /// A factor L (row-major n x r) with C ≈ L L^T for a symmetric positive semi-definite C:
    /// Cholesky with complete (diagonal) pivoting, stopped when the largest remaining diagonal
    /// is at most n * eps * max(diag C) (LAPACK `dpstrf`'s default tolerance), so that
    /// rank-deficient covariances (fewer samples than features) factor too; r is the rank found.
    static func pivotedCholesky(_ c: [Double], dimension n: Int) -> (factor: [Double], rank: Int) {
        var remaining = (0..<n).map { c[$0 * n + $0] }
        let tolerance = Double(n) * Double.ulpOfOne * (remaining.max() ?? 0)
        var used = [Bool](repeating: false, count: n)
        var lt = [Double]()              // L transposed, row-major r x n, grown a row at a time
        lt.reserveCapacity(n * 64)
        var r = 0
        while r < n {
            var j = -1, best = -Double.infinity
            for i in 0..<n where !used[i] && remaining[i] > best { best = remaining[i]; j = i }
            guard j >= 0, best > tolerance else { break }
            used[j] = true
            let k = r
            let pivot = best.squareRoot()
            var column = [Double](repeating: 0, count: n)
            // column_i = (C[i][j] - sum_t L[i][t] L[j][t]) / pivot, for the unused rows i.
            for i in 0..<n where !used[i] { column[i] = c[j * n + i] }
            lt.withUnsafeBufferPointer { lt in
                for t in 0..<k {
                    let row = lt.baseAddress! + t * n
                    let ljt = row[j]
                    if ljt == 0 { continue }
                    for i in 0..<n { column[i] -= row[i] * ljt }
                }
            }
            for i in 0..<n {
                if used[i] { column[i] = 0 } else { column[i] /= pivot; remaining[i] -= column[i] * column[i] }
            }
            column[j] = pivot
            lt.append(contentsOf: column)
            r += 1
        }
        var factor = [Double](repeating: 0, count: n * r)
        for t in 0..<r { for i in 0..<n { factor[i * r + t] = lt[t * n + i] } }
        return (factor, r)
    }

    /// L^T C L for row-major L (n x r) and symmetric C (n x n): r x r, symmetric.
    static func congruence(_ c: [Double], _ l: [Double], n: Int, r: Int) -> [Double] {
        guard r > 0 else { return [] }
        var t = [Double](repeating: 0, count: n * r)   // C L, n x r
        var m = [Double](repeating: 0, count: r * r)
        c.withUnsafeBufferPointer { c in
            l.withUnsafeBufferPointer { l in
                t.withUnsafeMutableBufferPointer { t in
                    let (cp, lp, tp) = (c.baseAddress!, l.baseAddress!, t.baseAddress!)
                    Parallel.forEach(n, cost: n * r) { i in
                        let out = tp + i * r
                        for k in 0..<n {
                            let x = cp[i * n + k]
                            if x == 0 { continue }
                            let lk = lp + k * r
                            for b in 0..<r { out[b] += x * lk[b] }
                        }
                    }
                    m.withUnsafeMutableBufferPointer { m in
                    let mp = m.baseAddress!
                    // M[a][:] = sum_i L[i][a] T[i][:], rows of M split across threads.
                    Parallel.forEach(r, cost: n * r) { a in
                        let out = mp + a * r
                        for i in 0..<n {
                            let x = lp[i * r + a]
                            if x == 0 { continue }
                            let ti = tp + i * r
                            for b in 0..<r { out[b] += x * ti[b] }
                        }
                    }
                    }
                }
            }
        }
        for a in 0..<r {
            for b in (a + 1)..<max(r, a + 1) {
                let s = 0.5 * (m[a * r + b] + m[b * r + a])
                m[a * r + b] = s
                m[b * r + a] = s
            }
        }
        return m
    }
}
