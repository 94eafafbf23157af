import Tensors

/// Range checks shared by the model configs: each refuses a `config.json` value by its field
/// name before anything is built, so that a zero, negative or non-finite number is a clear
/// error instead of a division by zero, a crash or all-NaN samples.
enum ConfigChecks {
    /// `value` (when present) must be at least `minimum`.
    static func atLeast(_ minimum: Int, _ field: String, _ value: Int?) throws {
        if let value, value < minimum { throw ModelError("\(field) must be at least \(minimum), got \(value)") }
    }

    /// Every entry of a list field must be at least `minimum`.
    static func eachAtLeast(_ minimum: Int, _ field: String, _ values: [Int]) throws {
        for (i, v) in values.enumerated() where v < minimum {
            throw ModelError("\(field)[\(i)] must be at least \(minimum), got \(v)")
        }
    }

    /// `value` must be finite and positive (a norm's epsilon, a scale factor).
    static func positive(_ field: String, _ value: Double) throws {
        guard value.isFinite, value > 0 else { throw ModelError("\(field) must be a positive number, got \(value)") }
    }

    /// `value` must be a probability in [0, 1) (dropout).
    static func probability(_ field: String, _ value: Double) throws {
        guard value.isFinite, value >= 0, value < 1 else { throw ModelError("\(field) must be in [0, 1), got \(value)") }
    }

    /// The float32 weights of `parameters` must fit in memory, before they are allocated.
    static func weightsFit(_ parameters: Double) throws {
        let count = parameters < 1e15 ? "\(Int(parameters))" : String(format: "%.3g", parameters)
        if let problem = MemoryBudget.shortfall(parameters * 4, for: "the model's \(count) parameters") {
            throw ModelError(problem)
        }
    }

    /// Roughly the parameters of a U-Net with these block widths: per block, the 3x3
    /// convolutions of `resnets` ResNet blocks down and `resnets + 1` up (two each, the up
    /// ones wider by the skip), plus a self-attention of 4 c^2 per block where it has one.
    /// An estimate for the memory check, within a small factor of the real count.
    static func estimatedUNetParameters(blockOutChannels: [Int], resnets: (Int) -> Int, timeEmbedding: Int) -> Double {
        var total = Double(timeEmbedding) * Double(timeEmbedding) * 2
        for (i, c) in blockOutChannels.enumerated() {
            let c2 = Double(c) * Double(c)
            let layers = Double(max(resnets(i), 0))
            total += c2 * 9 * (2 * layers + 3 * (layers + 1)) + c2 * 4 * (2 * layers + 1)
            total += Double(c) * Double(timeEmbedding) * (2 * layers + 1)
        }
        return total
    }
}
