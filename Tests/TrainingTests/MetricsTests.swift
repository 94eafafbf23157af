import Foundation
import ModelIO
import Testing
import Tensors
import Training

/// The fixtures of scripts/fixtures/fid_kid_metrics.py: features and what pytorch-fid and
/// torch-fidelity compute from them.
struct MetricsFixture: Decodable {
    struct Subset: Decodable { let a: [Int], b: [Int] }
    let dimension: Int
    let fid: Double, trace_sqrt_product: Double, fid_self: Double
    let mean_a: [Double], covariance_a_diagonal: [Double], covariance_a_row0: [Double]
    let kid_subsets: [Subset]
    let kid_subset_values: [Double], kid_mean: Double, kid_std: Double
    let kid_first_rows: Int, kid_first_rows_mmd: Double

    static func load() throws -> (MetricsFixture, Tensor, Tensor) {
        let folder = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("metrics")
        let fixture = try JSONDecoder().decode(MetricsFixture.self, from: Data(contentsOf: folder.appendingPathComponent("expected.json")))
        return (fixture, try NPY.load(folder.appendingPathComponent("features_a.npy").path),
                try NPY.load(folder.appendingPathComponent("features_b.npy").path))
    }
}

func close(_ a: Double, _ b: Double, relative: Double, absolute: Double = 0) -> Bool {
    abs(a - b) <= absolute + relative * Swift.max(abs(a), abs(b))
}

@Suite struct MetricsTests {
    /// A = V diag(l) V^T reproduces A, V is orthonormal, and the eigenvalues of a matrix
    /// built from known ones come back.
    @Test func symmetricEigenReconstructs() throws {
        let d = 40
        var known = [Double](repeating: 0, count: d)
        for i in 0..<d { known[i] = Double(i) * 0.37 - 4.0 }
        known[7] += 1e-9  // a near-double eigenvalue
        let a = symmetricMatrix(eigenvalues: known, seed: 3)
        let eigen = try SymmetricEigen(a, dimension: d)
        let sortedKnown: [Double] = known.sorted()
        var worstValue: Double = 0
        for i in 0..<d { worstValue = Swift.max(worstValue, abs(eigen.values[i] - sortedKnown[i])) }
        #expect(worstValue < 1e-12)
        let rebuilt = eigen.applying { $0 }
        var worstEntry: Double = 0
        for i in 0..<(d * d) { worstEntry = Swift.max(worstEntry, abs(rebuilt[i] - a[i])) }
        #expect(worstEntry < 1e-12)
        let v = eigen.vectors
        var worstOrthogonality: Double = 0
        for i in 0..<d {
            for j in 0..<d {
                var dot: Double = 0
                for k in 0..<d { dot += v[k * d + i] * v[k * d + j] }
                worstOrthogonality = Swift.max(worstOrthogonality, abs(dot - (i == j ? 1.0 : 0.0)))
            }
        }
        #expect(worstOrthogonality < 1e-12)
    }

    @Test func symmetricEigenRefusesBadInput() {
        #expect(throws: MetricError.self) { try SymmetricEigen([1, 2, 3], dimension: 2) }
        #expect(throws: MetricError.self) { try SymmetricEigen([1, .nan, .nan, 1], dimension: 2) }
    }

    /// Diagonal Gaussians: FD = |mu1 - mu2|^2 + sum_i (sqrt(s1_i) - sqrt(s2_i))^2.
    @Test func diagonalGaussiansClosedForm() throws {
        let d = 12
        let mu1: [Double] = (0..<d).map { Double($0) * 0.1 }
        let mu2: [Double] = (0..<d).map { 1.0 - Double($0) * 0.05 }
        let s1: [Double] = (0..<d).map { 0.5 + Double($0) }
        let s2: [Double] = (0..<d).map { 2.0 + 0.3 * Double($0 % 4) }
        func diagonal(_ s: [Double]) -> [Double] {
            var m = [Double](repeating: 0, count: d * d)
            for i in 0..<d { m[i * d + i] = s[i] }
            return m
        }
        let a = try FeatureStatistics(mean: mu1, covariance: diagonal(s1), count: 10)
        let b = try FeatureStatistics(mean: mu2, covariance: diagonal(s2), count: 10)
        var expected: Double = 0
        for i in 0..<d {
            let dm: Double = mu1[i] - mu2[i]
            let ds: Double = s1[i].squareRoot() - s2[i].squareRoot()
            expected += dm * dm + ds * ds
        }
        #expect(close(try FrechetDistance.distance(a, b), expected, relative: 1e-12))
        #expect(abs(try FrechetDistance.distance(a, a)) < 1e-12)
    }

    /// Mean and covariance as numpy computes them, and the Fréchet distance as pytorch-fid
    /// (scipy.linalg.sqrtm) computes it, on 500 and 400 correlated 64-d features.
    @Test func frechetDistanceMatchesPytorchFid() throws {
        let (fixture, a, b) = try MetricsFixture.load()
        let sa = try FeatureStatistics(features: a), sb = try FeatureStatistics(features: b)
        let d = fixture.dimension
        #expect(sa.count == 500 && sa.dimension == d)
        for i in 0..<d {
            #expect(close(sa.mean[i], fixture.mean_a[i], relative: 1e-9, absolute: 1e-12))
            #expect(close(sa.covariance[i * d + i], fixture.covariance_a_diagonal[i], relative: 1e-9))
            #expect(close(sa.covariance[i], fixture.covariance_a_row0[i], relative: 1e-9, absolute: 1e-12))
        }
        let trace = try FrechetDistance.traceOfSquareRootOfProduct(sa.covariance, sb.covariance, dimension: d)
        #expect(close(trace, fixture.trace_sqrt_product, relative: 1e-9))
        let fd = try FrechetDistance.distance(sa, sb)
        #expect(close(fd, fixture.fid, relative: 1e-8), "\(fd) vs \(fixture.fid)")
        #expect(abs(try FrechetDistance.distance(sa, sa)) < 1e-8)
        #expect(abs(try FrechetDistance.distance(sa, sb) - FrechetDistance.distance(sb, sa)) < 1e-8)
    }

    /// Accumulating in batches gives the statistics of the whole.
    @Test func accumulatorMatchesOneShot() throws {
        let (_, a, _) = try MetricsFixture.load()
        var acc = try FeatureAccumulator(dimension: 64)
        for start in stride(from: 0, to: 500, by: 128) { try acc.add(a.sliced(axis: 0, start: start, end: Swift.min(start + 128, 500))) }
        let batched = try acc.statistics(), whole = try FeatureStatistics(features: a)
        #expect(zip(batched.covariance, whole.covariance).allSatisfy { close($0, $1, relative: 1e-12, absolute: 1e-12) })
        #expect(throws: MetricError.self) { try acc.add(Tensor.zeros([3, 5])) }
        #expect(throws: MetricError.self) { try FeatureAccumulator(dimension: 4).statistics() }
    }

    /// KID on explicit subsets agrees with torch-fidelity's unbiased polynomial MMD.
    @Test func kidMatchesTorchFidelity() throws {
        let (fixture, a, b) = try MetricsFixture.load()
        let result = try KernelInceptionDistance.compute(a, b, subsetIndices: fixture.kid_subsets.map { ($0.a, $0.b) })
        for (found, expected) in zip(result.subsetValues, fixture.kid_subset_values) {
            #expect(close(found, expected, relative: 1e-5), "\(found) vs \(expected)")
        }
        #expect(close(result.mean, fixture.kid_mean, relative: 1e-5))
        #expect(close(result.std, fixture.kid_std, relative: 1e-3))
        let m = fixture.kid_first_rows
        let full = try KernelInceptionDistance.unbiasedMMD2(a.sliced(axis: 0, start: 0, end: m), b.sliced(axis: 0, start: 0, end: m))
        #expect(close(full, fixture.kid_first_rows_mmd, relative: 1e-5))
    }

    /// Seeded subsets: distinct in-range indices, the same for the same seed, and the mean
    /// of the explicit-subset computation over those very subsets. A set against itself,
    /// in one full subset, gives an MMD^2 of exactly the unbiased self-estimate (~0).
    @Test func kidSeededSubsets() throws {
        let (_, a, b) = try MetricsFixture.load()
        let picks = KernelInceptionDistance.subsetIndices(subsets: 4, subsetSize: 50, counts: (500, 400), seed: 9)
        #expect(picks.count == 4)
        for (x, y) in picks {
            #expect(Set(x).count == 50 && x.allSatisfy { (0..<500).contains($0) })
            #expect(Set(y).count == 50 && y.allSatisfy { (0..<400).contains($0) })
        }
        #expect(picks.map(\.0) == KernelInceptionDistance.subsetIndices(subsets: 4, subsetSize: 50, counts: (500, 400), seed: 9).map(\.0))
        let seeded = try KernelInceptionDistance.compute(a, b, subsets: 4, subsetSize: 50, seed: 9)
        let explicit = try KernelInceptionDistance.compute(a, b, subsetIndices: picks)
        #expect(seeded == explicit)
        // Subset size capped at the smaller set.
        #expect(try KernelInceptionDistance.compute(a, b, subsets: 2, subsetSize: 1000).subsetSize == 400)
        // Two halves of one distribution: KID near 0 next to the KID between distributions.
        let same = try KernelInceptionDistance.compute(a.sliced(axis: 0, start: 0, end: 250), a.sliced(axis: 0, start: 250, end: 500),
                                                       subsets: 20, subsetSize: 200)
        let different = try KernelInceptionDistance.compute(a, b, subsets: 20, subsetSize: 200)
        #expect(abs(same.mean) < 0.05 * different.mean, "same \(same.mean), different \(different.mean)")
        #expect(throws: MetricError.self) { try KernelInceptionDistance.compute(a, Tensor.zeros([10, 3])) }
    }

    /// SSIM against scikit-image's `structural_similarity` (Gaussian 11x11 window, sigma 1.5,
    /// population covariance, K1 0.01, K2 0.03, data range 1, mean over RGB channels) on random
    /// gray and RGB pairs: scripts/fixtures/ssim_skimage.py. Both compute in float64 from the
    /// same float32 pixels and average the same positions (skimage crops (11 - 1) / 2 pixels of
    /// each edge after filtering, Diffuse visits only windows inside the image), so they agree
    /// to rounding: 1e-9 here, far inside the 1e-5 a float32 implementation could claim.
    @Test func ssimMatchesScikitImage() throws {
        struct Case: Decodable { let name: String, channels: Int, height: Int, width: Int, a: [Float], b: [Float], ssim: Double }
        struct Fixture: Decodable { let skimage_version: String, cases: [Case] }
        let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("ssim/expected.json")
        let fixture = try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
        #expect(fixture.cases.count == 6 && fixture.cases.contains { $0.channels == 3 } && fixture.cases.contains { $0.channels == 1 })
        for c in fixture.cases {
            let found = ImageQuality.ssim(c.a, c.b, channels: c.channels, height: c.height, width: c.width)
            #expect(abs(found - c.ssim) < 1e-9, "\(c.name): Diffuse \(found), scikit-image \(fixture.skimage_version) \(c.ssim)")
        }
        // Identical images score exactly 1.
        let one = fixture.cases[0]
        #expect(abs(ImageQuality.ssim(one.a, one.a, channels: one.channels, height: one.height, width: one.width) - 1) < 1e-12)
    }
}
