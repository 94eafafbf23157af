import Testing
import Tensors
import NeuralNetworks

/// A miniature of diffusers' naming: nested blocks, module lists, optional children, renames.
final class Resnet: Module {
    let norm1 = GroupNorm(groups: 2, channels: 4)
    let conv1 = Conv2d(4, 4, kernelSize: 3, padding: 1)
    let convShortcut: Conv2d?
    init(shortcut: Bool) {
        convShortcut = shortcut ? Conv2d(4, 4, kernelSize: 1) : nil
        super.init()
    }
}

final class Block: Module {
    let resnets = [Resnet(shortcut: false), Resnet(shortcut: true)]
}

final class TimeEmbedding: Module {
    let linear1 = Linear(4, 8)
    let linear2 = Linear(8, 8)
    override class var keyOverrides: [String: String] { ["linear1": "linear_1", "linear2": "linear_2"] }
}

final class Toy: Module {
    let timeEmbedding = TimeEmbedding()
    let downBlocks = [Block()]
    let head = Sequential([Linear(8, 8), SiLU(), Linear(8, 2)])
}

@Suite struct ModuleTests {
    @Test func parameterPathsFollowPyTorch() {
        let paths = Toy().namedParameters().map(\.0)
        #expect(paths == [
            "time_embedding.linear_1.weight", "time_embedding.linear_1.bias",
            "time_embedding.linear_2.weight", "time_embedding.linear_2.bias",
            "down_blocks.0.resnets.0.norm1.weight", "down_blocks.0.resnets.0.norm1.bias",
            "down_blocks.0.resnets.0.conv1.weight", "down_blocks.0.resnets.0.conv1.bias",
            "down_blocks.0.resnets.1.norm1.weight", "down_blocks.0.resnets.1.norm1.bias",
            "down_blocks.0.resnets.1.conv1.weight", "down_blocks.0.resnets.1.conv1.bias",
            "down_blocks.0.resnets.1.conv_shortcut.weight", "down_blocks.0.resnets.1.conv_shortcut.bias",
            "head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias",
        ])
        #expect(Toy().namedModules().map(\.0).contains("down_blocks.0.resnets.1.conv_shortcut"))
    }

    @Test func countsModesAndFreezing() {
        let m = Toy()
        let total = 4 * 8 + 8 + 8 * 8 + 8 + 2 * (4 + 4 + 144 + 4) + (16 + 4) + 64 + 8 + 16 + 2
        #expect(m.parameterCount() == total)
        m.timeEmbedding.freeze()
        #expect(m.parameterCount(trainableOnly: true) == total - (4 * 8 + 8 + 8 * 8 + 8))
        #expect(!m.trainableParameters().contains { $0.0.hasPrefix("time_embedding") })
        m.eval()
        #expect(m.namedModules().allSatisfy { !$0.1.isTraining })
        m.train()
        #expect(m.downBlocks[0].resnets[1].isTraining)
    }

    @Test func stateDictRoundTrip() throws {
        let a = Toy(), b = Toy()
        try b.load(stateDict: a.stateDict())
        for ((pa, ta), (pb, tb)) in zip(a.stateDict().sorted { $0.key < $1.key }, b.stateDict().sorted { $0.key < $1.key }) {
            #expect(pa == pb && ta.scalars == tb.scalars)
        }
    }

    /// A state dict that does not fit is refused with every offending name and both shapes,
    /// and the module is left unchanged.
    @Test func mismatchedStateDictsAreRefused() {
        let m = Toy()
        let before = m.stateDict()
        var state = before
        state["head.2.weight"] = Tensor.zeros([3, 8])
        state["extra.weight"] = Tensor.zeros([1])
        state["time_embedding.linear_1.bias"] = nil
        #expect(throws: StateDictError(problems: [
            .missing(key: "time_embedding.linear_1.bias"),
            .shapeMismatch(key: "head.2.weight", expected: [2, 8], found: [3, 8]),
            .unexpected(key: "extra.weight"),
        ])) { try m.load(stateDict: state) }
        #expect(m.stateDict()["head.0.weight"]!.scalars == before["head.0.weight"]!.scalars)
        do {
            try m.load(stateDict: state)
        } catch {
            #expect("\(error)" == "missing key time_embedding.linear_1.bias; head.2.weight: expected shape [2, 8], found [3, 8]; unexpected key extra.weight")
        }
        // Non-strict loading takes what fits by name, but never a wrong shape.
        state["head.2.weight"] = nil
        #expect(throws: Never.self) { try m.load(stateDict: state, strict: false) }
    }

    /// Gradients come keyed by path; frozen parameters get none.
    @Test func gradientsByPath() {
        let m = Sequential([Linear(3, 2), Tanh(), Linear(2, 1)])
        (m.layers[0] as! Linear).freeze()
        let x = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        let (loss, grads) = valueAndGradient(of: m) { $0(x).square().mean() }
        #expect(Set(grads.keys) == ["2.weight", "2.bias"])
        #expect(loss.item > 0)
        // The parameters are back in place (not tape-tracked copies) afterwards.
        let again = valueAndGradient(of: m) { $0(x).square().mean() }
        #expect(again.value.item == loss.item)
    }
}
