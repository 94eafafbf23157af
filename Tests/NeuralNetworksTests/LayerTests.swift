import Foundation
import Testing
import Tensors
import NeuralNetworks

@Suite struct LayerTests {
    struct Case: Decodable {
        let state: [String: Stored]
        let inputs: [Stored]
        let output: Stored
    }
    struct Fixture: Decodable {
        let `init`: [String: [String: Stored]]
        let modules: [String: Case]
    }

    static let fixture: Fixture = try! JSONDecoder().decode(Fixture.self, from: fixtureData("layers.json"))

    /// Built in PyTorch's order from a TorchGenerator seeded like torch.manual_seed(0), the
    /// layers get PyTorch's initial weights exactly.
    @Test func pytorchInitialisationReproduced() {
        let g = TorchGenerator(seed: 0)
        let lin = Linear(5, 3, generator: g), conv = Conv2d(2, 4, kernelSize: 3, generator: g), emb = Embedding(4, 3, generator: g)
        for (name, module) in [("linear", lin as Module), ("conv", conv), ("embedding", emb)] {
            let want = Self.fixture.`init`[name]!
            let got = module.stateDict()
            #expect(Set(got.keys) == Set(want.keys))
            for (k, v) in want { #expect(got[k]!.scalars == v.values, "\(name).\(k)") }
        }
    }

    static func loaded<M: Module>(_ m: M, _ name: String) throws -> (M, Case) {
        let c = fixture.modules[name]!
        try m.load(stateDict: c.state.mapValues(\.tensor))
        return (m, c)
    }

    /// Modules given torch's weights compute torch's outputs (diffusers' Attention names load
    /// as they are).
    @Test func outputsMatchPyTorch() throws {
        var (lin, c) = try Self.loaded(Linear(6, 4), "linear")
        expectClose(lin(c.inputs[0].tensor).scalars, c.output.values, atol: 1e-6, rtol: 1e-5, "linear")
        let (conv, cc) = try Self.loaded(Conv2d(3, 5, kernelSize: 3, stride: 2, padding: 1), "conv")
        expectClose(conv(cc.inputs[0].tensor).scalars, cc.output.values, atol: 1e-5, rtol: 1e-5, "conv")
        let (gn, gc) = try Self.loaded(GroupNorm(groups: 2, channels: 4), "groupnorm")
        expectClose(gn(gc.inputs[0].tensor).scalars, gc.output.values, atol: 1e-5, rtol: 1e-5, "groupnorm")
        let (ln, lc) = try Self.loaded(LayerNorm(6), "layernorm")
        expectClose(ln(lc.inputs[0].tensor).scalars, lc.output.values, atol: 1e-5, rtol: 1e-5, "layernorm")
        let (sa, sc) = try Self.loaded(Attention(queryDim: 8, heads: 2, headDim: 4, bias: true), "self_attention")
        sa.eval()
        expectClose(sa(sc.inputs[0].tensor).scalars, sc.output.values, atol: 1e-5, rtol: 1e-5, "self attention")
        let (ca, xc) = try Self.loaded(Attention(queryDim: 8, contextDim: 6, heads: 2, headDim: 3), "cross_attention")
        expectClose(ca(xc.inputs[0].tensor, context: xc.inputs[1].tensor).scalars, xc.output.values, atol: 1e-5, rtol: 1e-5,
                    "cross attention")
        lin = Linear(2, 2)
        _ = lin
    }

    @Test func dropout() {
        let d = Dropout(0.25, generator: PhiloxGenerator(seed: 5))
        let x = Tensor.ones([100_000])
        let y = d(x).scalars
        let zeros = y.filter { $0 == 0 }.count
        #expect(abs(Double(zeros) / 100_000 - 0.25) < 0.01)
        #expect(y.allSatisfy { $0 == 0 || $0 == Float(1) / 0.75 })
        d.eval()
        #expect(d(x).scalars == x.scalars)
        // Gradient: the same mask, scaled.
        d.train()
        let g = gradient(at: [Tensor.ones([8])]) { d($0[0]).sum() }[0].scalars
        #expect(g.allSatisfy { $0 == 0 || $0 == Float(1) / 0.75 })
    }

    /// bf16 compute with fp32 master weights: outputs close to fp32, gradients float32.
    @Test func mixedPrecision() {
        Initialization.seed(3)
        let m = Sequential([Conv2d(3, 8, kernelSize: 3, padding: 1), SiLU(), Conv2d(8, 3, kernelSize: 3, padding: 1)])
        let x = PhiloxGenerator(seed: 1).normal([2, 3, 8, 8])
        let full = m(x)
        m.setComputeType(.bfloat16)
        let mixed = m(x)
        #expect(mixed.dtype == .bfloat16)
        expectClose(mixed.to(.float32).scalars, full.scalars, atol: 0.05, rtol: 0.03, "bf16 vs fp32")
        let (_, grads) = valueAndGradient(of: m) { $0(x).to(.float32).square().mean() }
        #expect(grads.values.allSatisfy { $0.dtype == .float32 })
        #expect(m.namedParameters().allSatisfy { $0.1.value.dtype == .float32 })
    }
}
