import Diffusion
import Testing
import Tensors

@Suite struct SamplingLoopTests {
    /// The loop draws each stochastic step's noise from the one generator it is given, in
    /// order: the same seed repeats a run, and fresh noise at every step (not one draw
    /// repeated) differs from restarting the generator per step.
    @Test(arguments: [SamplerKind.ddpm, .eulerAncestral, .dpmSolverSDE2M])
    func eachStepDrawsFromTheGivenGenerator(kind: SamplerKind) throws {
        let sampler = try makeSampler(kind, config: SchedulerConfig(), steps: 8)
        let noise = PhiloxGenerator(seed: 3).normal([2, 16])
        let model: (Tensor, Tensor) -> Tensor = { x, _ in x * 0.1 }
        let first = sampler.sample(from: noise, generator: PhiloxGenerator(seed: 5), model: model)
        let again = sampler.sample(from: noise, generator: PhiloxGenerator(seed: 5), model: model)
        let other = sampler.sample(from: noise, generator: PhiloxGenerator(seed: 6), model: model)
        #expect(first.scalars == again.scalars)
        #expect(first.scalars != other.scalars)
    }

    /// Progress comes once per model evaluation with the sample after it and x0 where the
    /// sampler forms it; a cancellation stops the loop before the next evaluation with
    /// `DenoisingCancelled`, after exactly the evaluations that ran.
    @Test func progressAndCancellation() throws {
        let sampler = try makeSampler(.ddim, config: SchedulerConfig(), steps: 6)
        let noise = PhiloxGenerator(seed: 1).normal([1, 4])
        var seen: [DenoisingProgress] = []
        var evaluations = 0
        let x = try sampler.denoise(from: noise, generator: PhiloxGenerator(seed: 0), progress: { seen.append($0) }) { x, _ in
            evaluations += 1
            return x * 0.1
        }
        #expect(seen.map(\.index) == Array(1...6) && seen.allSatisfy { $0.count == 6 })
        #expect(seen.last?.sample.scalars == x.scalars && seen.allSatisfy { $0.predictedOriginal != nil })
        let token = CancellationToken()
        evaluations = 0
        #expect(throws: DenoisingCancelled(evaluationsDone: 3)) {
            _ = try sampler.denoise(from: noise, generator: PhiloxGenerator(seed: 0),
                                    progress: { if $0.index == 3 { token.cancel() } },
                                    isCancelled: { token.isCancelled }) { x, _ in evaluations += 1; return x * 0.1 }
        }
        #expect(evaluations == 3)
    }
}
