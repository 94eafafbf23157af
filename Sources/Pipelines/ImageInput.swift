import Diffusion
import Foundation
import ImageIO
import Tensors

/// The image a `SamplingRequest` starts from or is conditioned on.
public enum ImageInput: Codable, Equatable, Sendable {
    /// Generation from noise.
    case none
    /// Image-to-image (SDEdit): start from `image` (the sample's size) noised part way;
    /// `strength` in (0, 1] is the share of the steps run on it (1: ignore the image).
    case imageToImage(image: EncodedImage, strength: Double)
    /// Inpainting: `mask` (the image's size) is white (>= 128) where to generate, black where
    /// to keep `image`; RePaint's `resampling` for models that do not inpaint by themselves.
    case inpaint(image: EncodedImage, mask: EncodedImage, resampling: GenerationRequest.Resampling)
    /// Super-resolution with an SR3 model: `image` whose sides times `factor` are the sample's;
    /// the model sees it upsampled (nearest) beside the sample.
    case upscale(image: EncodedImage, factor: Int)
}

/// A PNG image in a request: base64 PNG bytes in JSON, or (from the command line only) a
/// file path read when the request is prepared. Decoding always gives bytes, so a request
/// that arrives as JSON can never name a file on the machine that runs it.
public struct EncodedImage: Codable, Equatable, Sendable {
    /// Where the PNG comes from.
    public enum Source: Equatable, Sendable {
        case png([UInt8])
        case file(String)
    }

    public var source: Source

    /// PNG bytes held in memory.
    public init(png bytes: [UInt8]) { source = .png(bytes) }
    /// A PNG file, read when the request is prepared (or encoded).
    public init(file path: String) { source = .file(path) }
    /// An image, encoded as PNG.
    public init(_ image: Image) throws { source = .png(try image.encodedPNG()) }

    /// The file's path, or a label for bytes ("the request's <role>"), as errors name it.
    func name(role: String) -> String {
        switch source {
        case .file(let path): return path
        case .png: return "the request's \(role)"
        }
    }

    /// The image: transparency flattened onto black, colour made gray by luma or gray
    /// replicated into colour, to `channels` channels; errors name the file or the role.
    func decoded(role: String, channels: Int) throws -> Image {
        guard (1...4).contains(channels) else {
            throw PipelineError("the model takes \(channels)-channel samples: a PNG \(role) cannot feed it")
        }
        let image: Image
        do {
            switch source {
            case .file(let path): image = try Image(contentsOf: path)
            case .png(let bytes): image = try Image.decodePNG(bytes, name: name(role: role))
            }
        } catch {
            throw PipelineError("\(name(role: role)): cannot read the \(role): \(ErrorText.describe(error))")
        }
        let flat = channels == 2 || channels == 4 ? image : image.composited(on: .black)
        return flat.converted(channels: channels)
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let data = Data(base64Encoded: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "an image must be base64 PNG bytes"))
        }
        source = .png([UInt8](data))
    }

    /// Encodes the PNG bytes as base64 (a file is read now).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch source {
        case .png(let bytes): try c.encode(Data(bytes).base64EncodedString())
        case .file(let path): try c.encode(try Data(contentsOf: URL(fileURLWithPath: path)).base64EncodedString())
        }
    }
}
