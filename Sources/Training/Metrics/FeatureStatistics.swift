import Tensors

/// The mean and covariance of a set of feature vectors, accumulated in Float64: what the
/// Fréchet distance compares (the "mu" and "sigma" of pytorch-fid).
///
/// The covariance is the unbiased one (divided by n - 1), as `numpy.cov(rowvar=False)` gives.
/// Sums are taken around a shift (the first vector seen) so that large common offsets do not
/// cancel catastrophically.
public struct FeatureStatistics: Sendable, Equatable {
    /// Feature dimension d.
    public let dimension: Int
    /// Number of feature vectors the statistics came from.
    public let count: Int
    /// The mean, d values.
    public let mean: [Double]
    /// The covariance, row-major d x d, symmetric.
    public let covariance: [Double]

    /// Statistics given directly (e.g. loaded from a file). Throws when the sizes disagree.
    public init(mean: [Double], covariance: [Double], count: Int) throws {
        let d = mean.count
        guard d >= 1 else { throw MetricError("feature statistics: the mean is empty") }
        guard covariance.count == d * d else {
            throw MetricError("feature statistics: a mean of \(d) values needs a \(d) x \(d) covariance (\(d * d) values), found \(covariance.count)")
        }
        guard mean.allSatisfy(\.isFinite), covariance.allSatisfy(\.isFinite) else {
            throw MetricError("feature statistics: the mean or covariance holds NaN or infinite values")
        }
        (dimension, self.count, self.mean, self.covariance) = (d, count, mean, covariance)
    }

    /// The statistics of the rows of `features` [N, d] (N >= 2).
    public init(features: Tensor) throws {
        var accumulator = try FeatureAccumulator(dimension: features.rank == 2 ? features.shape[1] : 0)
        try accumulator.add(features)
        self = try accumulator.statistics()
    }

    /// `mean` as a [d] tensor and `covariance` as [d, d] (float32), for saving.
    public var meanTensor: Tensor { Tensor(mean.map(Float.init), shape: [dimension]) }
    public var covarianceTensor: Tensor { Tensor(covariance.map(Float.init), shape: [dimension, dimension]) }
}

/// Accumulates feature statistics batch by batch, so a whole training split never has to be
/// held as features at once.
public struct FeatureAccumulator: Sendable {
    public let dimension: Int
    public private(set) var count = 0
    private var shift: [Double] = []
    private var sum: [Double]
    /// Upper triangle of the sum of outer products of the shifted vectors, row-major d x d.
    private var outer: [Double]

    public init(dimension: Int) throws {
        guard dimension >= 1 else { throw MetricError("feature statistics need [N, d] features with d >= 1") }
        self.dimension = dimension
        sum = [Double](repeating: 0, count: dimension)
        outer = [Double](repeating: 0, count: dimension * dimension)
    }

    /// Adds the rows of `features` [N, d].
    public mutating func add(_ features: Tensor) throws {
        let d = dimension
        guard features.rank == 2, features.shape[1] == d else {
            throw MetricError("feature statistics: expected features [N, \(d)], found shape \(features.shape)")
        }
        let n = features.shape[0]
        let values = features.scalars
        guard values.allSatisfy(\.isFinite) else { throw MetricError("feature statistics: the features hold NaN or infinite values") }
        if shift.isEmpty, n > 0 { shift = (0..<d).map { Double(values[$0]) } }
        var row = [Double](repeating: 0, count: d)
        outer.withUnsafeMutableBufferPointer { o in
            for r in 0..<n {
                for j in 0..<d { row[j] = Double(values[r * d + j]) - shift[j]; sum[j] += row[j] }
                for i in 0..<d {
                    let x = row[i]
                    if x == 0 { continue }
                    for j in i..<d { o[i * d + j] += x * row[j] }
                }
            }
        }
        count += n
    }

    /// The mean and unbiased covariance of everything added.
    public func statistics() throws -> FeatureStatistics {
        let d = dimension
        guard count >= 2 else { throw MetricError("feature statistics need at least 2 feature vectors, got \(count)") }
        let n = Double(count)
        let shiftedMean = sum.map { $0 / n }
        var covariance = [Double](repeating: 0, count: d * d)
        for i in 0..<d {
            for j in i..<d {
                let c = (outer[i * d + j] - n * shiftedMean[i] * shiftedMean[j]) / (n - 1)
                covariance[i * d + j] = c
                covariance[j * d + i] = c
            }
        }
        return try FeatureStatistics(mean: zip(shiftedMean, shift).map { $0 + $1 }, covariance: covariance, count: count)
    }
}
