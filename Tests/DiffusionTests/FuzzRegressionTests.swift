import Diffusion
import Foundation
import Testing

/// Scheduler configs scripts/fuzz found (Tests/DiffusionTests/Fixtures/fuzz/): refused with
/// a message, never a trap.
@Suite struct SchedulerFuzzRegressionTests {
    static func path(_ name: String) -> String {
        Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.path + "/fuzz/" + name
    }

    /// Bytes that are not UTF-8 trapped Foundation's JSON5 scanner.
    @Test func notUTF8IsRefused() {
        do {
            _ = try SchedulerConfig.load(Self.path("scheduler_json5_not_utf8.json"))
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("not UTF-8 text"), "\(error)")
        }
    }

    /// Karras sigmas over a schedule whose last alphas_cumprod is 0 (zero terminal SNR, or
    /// float32 underflow) trapped converting a NaN timestep: every sampler now refuses or
    /// builds.
    @Test(arguments: ["scheduler_karras_zero_snr.json", "scheduler_karras_underflow.json"])
    func karrasOverAnInfiniteSigmaIsRefused(_ name: String) throws {
        let config = try SchedulerConfig.load(Self.path(name))
        #expect(config.useKarrasSigmas)
        var refused = 0
        for kind in SamplerKind.allCases {
            // PNDM's Runge-Kutta warm-up (skip_prk_steps false, these configs) needs 4 steps.
            for steps in [1, 7] where kind != .pndm || steps >= 4 {
                do { _ = try makeSampler(kind, config: config, steps: steps) } catch {
                    #expect("\(error)".contains("use_karras_sigmas needs finite sigmas"), "\(kind): \(error)")
                    refused += 1
                }
            }
        }
        #expect(refused > 0)
    }
}
