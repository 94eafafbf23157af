import Diffusion
import Testing
import Tensors

@Suite struct SamplingLoopTests {
    /// Without a generator, the loop draws each stochastic step's noise from one generator
    /// (PhiloxGenerator(seed: 0)) for the whole run, as with that generator passed in (a
    /// fresh generator per step, as before, added the same noise at every step and differed
    /// from the second step on).
    @Test(arguments: [SamplerKind.ddpm, .eulerAncestral, .dpmSolverSDE2M])
    func withoutAGeneratorEachStepDrawsFreshNoise(kind: SamplerKind) throws {
        let sampler = try makeSampler(kind, config: SchedulerConfig(), steps: 8)
        let noise = PhiloxGenerator(seed: 3).normal([2, 16])
        let model: (Tensor, Tensor) -> Tensor = { x, _ in x * 0.1 }
        let implicit = sampler.sample(from: noise, model: model)
        let explicit = sampler.sample(from: noise, generator: PhiloxGenerator(seed: 0), model: model)
        #expect(implicit.scalars == explicit.scalars)
    }
}
