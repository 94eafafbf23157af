import Foundation

/// The shape of an `ImageClassifier`: what it reads, how wide it is, what it predicts.
/// Stored as the `model` object of a classifier's JSON file (snake_case keys).
public struct ImageClassifierConfig: Codable, Equatable, Sendable {
    /// Height = width of the input images.
    public var imageSize: Int = 28
    /// Input channels (1 grayscale, 3 RGB).
    public var inChannels: Int = 1
    /// Number of classes the head predicts.
    public var numClasses: Int = 10
    /// Channels of each stage (two 3x3 convolutions, then 2x2 average pooling).
    public var channels: [Int] = [32, 64]
    /// Width of the feature layer (the penultimate activations: the FID/KID features).
    public var featureDim: Int = 128
    /// Groups of the GroupNorm after every convolution.
    public var normNumGroups: Int = 8

    public init(imageSize: Int = 28, inChannels: Int = 1, numClasses: Int = 10, channels: [Int] = [32, 64],
                featureDim: Int = 128, normNumGroups: Int = 8) {
        (self.imageSize, self.inChannels, self.numClasses, self.channels, self.featureDim, self.normNumGroups) =
            (imageSize, inChannels, numClasses, channels, featureDim, normNumGroups)
    }

    enum CodingKeys: String, CodingKey {
        case imageSize = "image_size", inChannels = "in_channels", numClasses = "num_classes", channels
        case featureDim = "feature_dim", normNumGroups = "norm_num_groups"
    }

    /// The side of the feature map the feature layer flattens: each stage halves it (floor),
    /// the strided reduction convolution halves it again (ceil).
    public var finalSpatialSize: Int {
        var s = imageSize
        for _ in channels { s /= 2 }
        return (s + 1) / 2
    }

    /// Refuses shapes the network cannot be built with, naming the field.
    public func validate() throws {
        func fail(_ message: String) -> Error { ModelError("image classifier config: " + message) }
        guard inChannels >= 1 else { throw fail("in_channels must be at least 1, got \(inChannels)") }
        guard numClasses >= 2 else { throw fail("num_classes must be at least 2, got \(numClasses)") }
        guard featureDim >= 1 else { throw fail("feature_dim must be at least 1, got \(featureDim)") }
        guard !channels.isEmpty, channels.allSatisfy({ $0 >= 1 }) else { throw fail("channels must be a non-empty list of positive widths, got \(channels)") }
        guard normNumGroups >= 1, channels.allSatisfy({ $0 % normNumGroups == 0 }) else {
            throw fail("norm_num_groups \(normNumGroups) must divide every stage's channels \(channels)")
        }
        guard imageSize >> channels.count >= 1 else {
            throw fail("image_size \(imageSize) is too small for \(channels.count) stages of 2x pooling")
        }
    }
}
