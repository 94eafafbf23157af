import Foundation
import Models
import Testing

/// Config inputs scripts/fuzz found (Tests/ModelsTests/Fixtures/fuzz/): each is refused
/// cleanly or survives a save/load round trip unchanged.
@Suite struct ConfigFuzzRegressionTests {
    /// A width whose parameter count passes Int.max: refused with the memory check's message,
    /// not a trap while formatting it.
    @Test func hugeWidthIsRefusedWithoutATrap() throws {
        let path = fixturesFolder() + "/fuzz/unet2d_config_weightsFit.json"
        do {
            _ = try UNet2DConfig.load(path)
            Issue.record("accepted")
        } catch {
            #expect("\(error)".contains("parameters needs about"), "\(error)")
        }
    }

    /// A null attention_head_dim (and mid_block_type) is written as null, so it reads back as
    /// null rather than as diffusers' defaults: the same model.
    @Test func nullFieldsSurviveARoundTrip() throws {
        let config = try UNet2DConfig.load(fixturesFolder() + "/fuzz/unet2d_config_roundtrip_null_head_dim.json")
        #expect(config.attentionHeadDim == nil)
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-roundtrip-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        try config.save(out)
        #expect(try UNet2DConfig.load(out) == config)
        var noMid = config
        noMid.midBlockType = nil
        try noMid.save(out)
        #expect(try UNet2DConfig.load(out) == noMid)
    }
}
