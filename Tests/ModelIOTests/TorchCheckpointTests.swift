import Foundation
@testable import ModelIO
import Testing
import Tensors

/// PyTorch checkpoint files (scripts/fixtures/torch_checkpoints.py) read without Python:
/// their tensors equal the ones torch saved (written beside them as safetensors), and files
/// that would run code, legacy and damaged files are refused with a message.
@Suite struct TorchCheckpointTests {
    func expectSame(_ got: [String: Tensor], _ expected: [String: Tensor], _ what: String) {
        #expect(Set(got.keys) == Set(expected.keys), "\(what): \(got.keys.sorted()) vs \(expected.keys.sorted())")
        for (name, e) in expected {
            guard let g = got[name] else { continue }
            #expect(g.shape == e.shape && g.dtype == e.dtype, "\(what) \(name): \(g.shape) \(g.dtype) vs \(e.shape) \(e.dtype)")
            if g.shape == e.shape && g.dtype == e.dtype {
                #expect(g.to(.float32).contiguous().scalars == e.to(.float32).contiguous().scalars, "\(what) \(name)")
            }
        }
    }

    /// float32, float16 (widened), bfloat16, int64, bool, a transposed view, a view at an
    /// offset into a shared storage, a 0-d tensor; and the Lightning layout named from
    /// inside its state_dict, with its other values kept.
    @Test func stateDictsEqualTorchs() throws {
        let expected = try Safetensors.load(try fixturePath("torch/expected.safetensors")).tensors
        expectSame(try TorchCheckpoint.load(try fixturePath("torch/state.pt")).tensors, expected, "state.pt")
        let lightning = try TorchCheckpoint.load(try fixturePath("torch/lightning.ckpt"))
        expectSame(lightning.tensors, expected, "lightning.ckpt")
        #expect(lightning.values.isEmpty)
        let state = try TorchCheckpoint.load(try fixturePath("torch/state.pt"))
        #expect(state.tensors["scalar"]?.shape == [] && state.tensors["norm.num_batches_tracked"]?.integers == [12])
    }

    /// A TorchScript archive: the module's parameters by their attribute paths.
    @Test func torchScriptModulesGiveTheirParameters() throws {
        let expected = try Safetensors.load(try fixturePath("torch/scripted.safetensors")).tensors
        expectSame(try TorchCheckpoint.load(try fixturePath("torch/scripted.pt")).tensors, expected, "scripted.pt")
    }

    /// A pickle that would call os.system is refused by name (nothing runs); the legacy
    /// format, a cut file, a storage that is too short and a pickle with an unknown opcode
    /// each give a message.
    @Test func maliciousAndDamagedFilesAreRefused() throws {
        let evil = try fixturePath("torch/evil.pt")
        let message = errorText { _ = try TorchCheckpoint.load(evil) }
        #expect(message.contains("refusing to call posix.system") || message.contains("refusing to call os.system"), "\(message)")
        #expect(errorText { _ = try TorchCheckpoint.load(try fixturePath("torch/legacy.pt")) }.contains("legacy torch.save file"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-torch-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let bytes = try Data(contentsOf: URL(fileURLWithPath: try fixturePath("torch/state.pt")))
        for cut in [10, bytes.count / 2, bytes.count - 30] {
            try bytes.prefix(cut).write(to: URL(fileURLWithPath: dir + "/cut.pt"))
            let m = errorText { _ = try TorchCheckpoint.load(dir + "/cut.pt") }
            #expect(m.contains("cut.pt"), "cut at \(cut): \(m)")
        }
        // Every single-byte change of the pickle is read or refused, never a crash.
        let archive = try ZipArchive(path: try fixturePath("torch/state.pt"))
        let pickle = Array(try archive.data("state/data.pkl"))
        for i in stride(from: 0, to: pickle.count, by: 3) {
            var damaged = pickle
            damaged[i] ^= 0x5A
            _ = try? Pickle.load(damaged, name: "damaged", vocabulary: [.torch])
        }
        #expect(errorText { _ = try Pickle.load([0x80, 0x02, 0x69, 0x2E], name: "x.pkl", vocabulary: [.torch]) }
                    .contains("opcode 0x69 is not one this reader supports"))
    }

    func errorText(_ body: () throws -> Void) -> String {
        do { try body(); return "no error" } catch { return "\(error)" }
    }
}
