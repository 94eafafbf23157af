import Datasets
import Tensors

/// Kernel Inception Distance (Bińkowski et al. 2018, "Demystifying MMD GANs", eq. 4): the
/// unbiased estimate of the squared maximum mean discrepancy between two feature sets under
/// the polynomial kernel k(x, y) = (x·y / d + 1)^3, averaged over random subsets, as
/// torch-fidelity and clean-fid compute it:
///
///   MMD^2_u = [sum_{i!=j} k(x_i, x_j) + sum_{i!=j} k(y_i, y_j)] / (m (m - 1))
///             - 2 sum_{i,j} k(x_i, y_j) / m^2
///
/// Each of `subsets` draws picks `subsetSize` rows of each set without replacement; KID is
/// the mean of the subsets' MMD^2 and its spread their (population, ddof = 0) standard
/// deviation. Unlike FID it is unbiased, so it can be compared across sample counts, and it can
/// come out slightly negative when the sets agree.
public enum KernelInceptionDistance {
    /// KID's mean and standard deviation over the subsets.
    public struct Result: Sendable, Equatable, Codable {
        public let mean: Double
        public let std: Double
        /// The MMD^2 of each subset.
        public let subsetValues: [Double]
        public let subsetSize: Int
    }

    /// KID over `subsets` seeded random subsets of min(`subsetSize`, n1, n2) rows of each set
    /// (rows of `x` [n1, d] and `y` [n2, d]).
    public static func compute(_ x: Tensor, _ y: Tensor, subsets: Int = 100, subsetSize: Int = 1000,
                               seed: UInt64 = 0) throws -> Result {
        try checkFeatures(x, y)
        guard subsets >= 1 else { throw MetricError("KID: the number of subsets must be at least 1, got \(subsets)") }
        let (n1, n2) = (x.shape[0], y.shape[0])
        let m = Swift.min(subsetSize, n1, n2)
        guard m >= 2 else { throw MetricError("KID needs subsets of at least 2 samples; the sets have \(n1) and \(n2), subset size \(subsetSize)") }
        return try compute(x, y, subsetIndices: subsetIndices(subsets: subsets, subsetSize: m, counts: (n1, n2), seed: seed))
    }

    /// The seeded subsets `compute(_:_:subsets:subsetSize:seed:)` uses: for each subset,
    /// `subsetSize` distinct rows of each set (sizes `counts`), drawn without replacement.
    public static func subsetIndices(subsets: Int, subsetSize: Int, counts: (Int, Int), seed: UInt64) -> [([Int], [Int])] {
        var rng = SplitMix64(seed: seed)
        let m = Swift.min(subsetSize, counts.0, counts.1)
        return (0..<subsets).map { _ in
            let a = choose(m, from: counts.0, using: &rng)
            return (a, choose(m, from: counts.1, using: &rng))
        }
    }

    /// KID over given subsets: pairs of row indices into `x` and `y`, each pair of equal length.
    public static func compute(_ x: Tensor, _ y: Tensor, subsetIndices: [([Int], [Int])]) throws -> Result {
        try checkFeatures(x, y)
        guard let first = subsetIndices.first else { throw MetricError("KID: no subsets given") }
        let m = first.0.count
        var values: [Double] = []
        for (i, (a, b)) in subsetIndices.enumerated() {
            guard a.count == m, b.count == m else {
                throw MetricError("KID: subset \(i) has \(a.count) and \(b.count) indices; every subset must have \(m) of each set")
            }
            guard a.allSatisfy({ (0..<x.shape[0]).contains($0) }), b.allSatisfy({ (0..<y.shape[0]).contains($0) }) else {
                throw MetricError("KID: subset \(i) has an index outside the \(x.shape[0]) and \(y.shape[0]) rows")
            }
            values.append(try unbiasedMMD2(x.indexSelect(axis: 0, indices: Tensor(integers: a)),
                                           y.indexSelect(axis: 0, indices: Tensor(integers: b))))
        }
        let mean = values.reduce(0, +) / Double(values.count)
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(values.count)
        return Result(mean: mean, std: variance.squareRoot(), subsetValues: values, subsetSize: m)
    }

    /// The unbiased MMD^2 of two equally sized sets [m, d] under k(x, y) = (x·y / d + 1)^3.
    /// Dot products in float32 (oneDNN matmul), kernel values and sums in Float64.
    public static func unbiasedMMD2(_ x: Tensor, _ y: Tensor) throws -> Double {
        try checkFeatures(x, y)
        let m = x.shape[0]
        guard y.shape[0] == m, m >= 2 else {
            throw MetricError("KID: the unbiased MMD^2 needs two sets of the same size >= 2, got \(m) and \(y.shape[0])")
        }
        let d = Double(x.shape[1])
        func kernelSum(_ a: Tensor, _ b: Tensor, skipDiagonal: Bool) -> Double {
            let dots = matmul(a.contiguous(), b.contiguous().transposed()).scalars
            var total = 0.0
            for i in 0..<m {
                for j in 0..<m where !(skipDiagonal && i == j) {
                    let k = Double(dots[i * m + j]) / d + 1
                    total += k * k * k
                }
            }
            return total
        }
        let xx = kernelSum(x, x, skipDiagonal: true)
        let yy = kernelSum(y, y, skipDiagonal: true)
        let xy = kernelSum(x, y, skipDiagonal: false)
        let mm = Double(m)
        return (xx + yy) / (mm * (mm - 1)) - 2 * xy / (mm * mm)
    }

    static func checkFeatures(_ x: Tensor, _ y: Tensor) throws {
        guard x.rank == 2, y.rank == 2, x.shape[1] == y.shape[1], x.shape[1] >= 1 else {
            throw MetricError("KID: features must be [n1, d] and [n2, d] with the same d, found \(x.shape) and \(y.shape)")
        }
    }

    /// `k` distinct indices from 0..<n in random order (a partial Fisher-Yates shuffle).
    public static func choose(_ k: Int, from n: Int, using rng: inout SplitMix64) -> [Int] {
        var pool = Array(0..<n)
        for i in 0..<k { pool.swapAt(i, i + Int(rng.next() % UInt64(n - i))) }
        return Array(pool[0..<k])
    }
}
