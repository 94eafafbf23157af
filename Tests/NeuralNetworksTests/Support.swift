import Foundation
import Testing
import Tensors
import NeuralNetworks

func fixtureData(_ name: String) throws -> Data {
    guard let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Fixtures") else {
        throw CocoaError(.fileNoSuchFile)
    }
    return try Data(contentsOf: url)
}

struct Stored: Decodable {
    let shape: [Int]
    let values: [Float]
    var tensor: Tensor { Tensor(values, shape: shape) }
}

/// Every element within atol + rtol |expected|.
func expectClose(_ a: [Float], _ b: [Float], atol: Float, rtol: Float, _ what: String,
                 sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(a.count == b.count, "\(what): \(a.count) vs \(b.count) values", sourceLocation: sourceLocation)
    var worst: (Float, Int) = (0, -1)
    for (i, (x, y)) in zip(a, b).enumerated() {
        let e = abs(x - y) / (atol + rtol * abs(y))
        if e > worst.0 { worst = (e, i) }
    }
    #expect(worst.0 <= 1, "\(what): element \(worst.1): \(worst.1 >= 0 ? a[worst.1] : 0) vs \(worst.1 >= 0 ? b[worst.1] : 0)",
            sourceLocation: sourceLocation)
}
