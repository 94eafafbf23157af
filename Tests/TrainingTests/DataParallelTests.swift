import Foundation
import Tensors
import Testing
@testable import Training

/// The pieces that make a data-parallel run independent of its number of processes, checked
/// in one process (scripts/tests/mpi-test runs the real thing under mpirun).
@Suite struct DataParallelTests {
    /// Each image's draws come from its place in the global batch alone: the draws of places
    /// 0..<8 are those of 0..<4 followed by 4..<8 (what ranks 0 and 1 of 2 draw), and differ
    /// between places and steps.
    @Test func drawsDependOnlyOnStepAndPlace() throws {
        var c = try tinyConfiguration(steps: 10, classConditional: true)
        c.batchSize = 8
        c.task = .inpainting
        try c.resolveModel()
        let trainer = try Trainer(configuration: c, dataset: try syntheticDataset())
        let shape = [1, 8, 8]
        let whole = trainer.draws(step: 3, places: 0..<8, imageShape: shape)
        let (a, b) = (trainer.draws(step: 3, places: 0..<4, imageShape: shape), trainer.draws(step: 3, places: 4..<8, imageShape: shape))
        #expect(whole.timesteps == a.timesteps + b.timesteps)
        #expect(whole.noise == a.noise + b.noise)
        #expect(whole.labelUniforms == a.labelUniforms + b.labelUniforms)
        #expect(whole.maskUniforms == a.maskUniforms + b.maskUniforms)
        #expect(whole.noise.count == 8 * 64 && whole.maskUniforms.count == 32 && whole.labelUniforms.count == 8)
        #expect(Array(whole.noise[0..<64]) != Array(whole.noise[64..<128]))
        #expect(trainer.draws(step: 4, places: 0..<4, imageShape: shape).noise != a.noise)
    }

    /// A plain process, or a job of one rank, needs no MPI: no group, and libmpi is not loaded.
    @Test func noGroupOutsideMPIRun() throws {
        #expect(try ProcessGroup.fromEnvironment([:]) == nil)
        #expect(try ProcessGroup.fromEnvironment(["OMPI_COMM_WORLD_SIZE": "1", "DIFFUSE_LIBMPI": "/nonexistent"]) == nil)
    }

    /// The gradient buckets keep every parameter whole, in sorted order, within the byte limit
    /// (one larger parameter gets a bucket of its own).
    @Test func bucketsHoldWholeParametersInOrder() {
        let gradients = ["b": Tensor.zeros([10]), "a": Tensor.zeros([3]), "c": Tensor.zeros([40]), "d": Tensor.zeros([2])]
        let buckets = GradientBuckets(gradients, bucketBytes: 64)  // 16 floats
        #expect(buckets.layout == [["a", "b"], ["c"], ["d"]])
        #expect(buckets.bytes == (13 + 40 + 2 + 2) * 4)
    }
}
