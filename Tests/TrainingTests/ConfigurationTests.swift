import Foundation
import Models
import Testing
import Tensors
import Training

/// Configurations: presets, JSON round trips and refusals with the field named.
@Suite struct ConfigurationTests {
    /// Every preset builds for 28x28 and 32x32, gray and RGB, with and without classes.
    @Test(arguments: ModelPreset.allCases) func presetsBuild(preset: ModelPreset) throws {
        for (size, channels) in [(28, 1), (32, 3)] {
            let config = preset.configuration(size: size, channels: channels, classEmbeddings: 11)
            let model = try UNet2DModel(config)
            let x = Tensor.zeros([1, channels, size, size])
            #expect(model(x, timesteps: Tensor(integers: [1]), classLabels: Tensor(integers: [10])).shape == [1, channels, size, size])
        }
    }

    /// training_config.json round trips; bad values are refused naming the field.
    @Test func roundTripAndRefusals() throws {
        let dir = try temporaryFolder()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = try tinyConfiguration(steps: 10, classConditional: true)
        c.minSNRGamma = 5
        c.clipNorm = nil
        try c.save(dir + "/training_config.json")
        #expect(try TrainingConfiguration.load(dir + "/training_config.json") == c)
        #expect(c.unet.numClassEmbeds == 5, "4 classes + the null class")
        #expect(c.nullClass == 4)

        var bad = c
        bad.batchSize = 0
        #expect(throws: TrainingError("batch_size must be at least 1, got 0")) { try bad.validate() }
        bad = c
        bad.imageSize = 9
        let odd = #expect(throws: TrainingError.self) { try bad.validate() }
        #expect(odd?.message.contains("must divide by 2") == true)
        #expect(throws: TrainingError.self) {
            _ = try TrainingConfiguration(data: "x", model: "huge", imageSize: 8, channels: 1, totalSteps: 1)
        }
        #expect(throws: TrainingError("class conditioning needs labeled data; x has no labels")) {
            _ = try TrainingConfiguration(data: "x", model: "tiny", imageSize: 8, channels: 1, classConditional: true, totalSteps: 1)
        }
    }

    /// The loss-curve SVG: a polyline with one point per step on a log axis.
    @Test func lossCurveSVG() throws {
        let losses = (0..<50).map { 1.0 * Foundation.pow(0.95, Double($0)) }
        let svg = LossCurve(smoothedLosses: losses).svg
        #expect(svg.hasPrefix("<svg"))
        let points = try #require(svg.split(separator: "points=\"").last?.split(separator: "\"").first)
        let pairs = points.split(separator: " ").map { $0.split(separator: ",").map { Double($0)! } }
        #expect(pairs.count == 50)
        // Log scale: equal ratios are equal vertical distances.
        let dy = zip(pairs.dropFirst(), pairs).map { $0[1] - $1[1] }
        #expect(dy.allSatisfy { Swift.abs($0 - dy[0]) < 0.11 }, "\(dy)")
        #expect(svg.contains("loss (log scale)") && svg.contains(">step<"))
    }
}
