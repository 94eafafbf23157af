import Datasets
import Models

/// The text side of a text-to-image run (`TrainingConfiguration.text`): the tokenizer built
/// from the training captions, the text encoder's shape, how often a caption is dropped (the
/// empty caption then stands in, so the model also learns the unconditional prediction that
/// classifier-free guidance needs), and where captions come from for labelled data without
/// them (a template such as "a {}" filled with the class name).
public struct TextConditioning: Codable, Equatable, Sendable {
    public var tokenizer: WordTokenizer
    public var encoder: TextEncoderConfig
    /// Probability that a caption is replaced by the empty one in training.
    public var captionDropout: Double = 0.1
    /// "a {}": captions from the class names (nil: the data's own captions); several
    /// templates separated by "|" ("a {}|a photo of a {}") are used in turn, image by image.
    public var captionTemplate: String?

    enum CodingKeys: String, CodingKey {
        case tokenizer, encoder, captionDropout = "caption_dropout", captionTemplate = "caption_template"
    }

    public init(tokenizer: WordTokenizer, encoder: TextEncoderConfig, captionDropout: Double = 0.1, captionTemplate: String? = nil) {
        (self.tokenizer, self.encoder, self.captionDropout, self.captionTemplate) = (tokenizer, encoder, captionDropout, captionTemplate)
    }

    /// Settings for `dataset`: a tokenizer over its captions (the template's, when given) with
    /// a context of the longest caption or `minimumContext` tokens, whichever is more (room for
    /// prompts longer than the training captions), and an encoder of the given width and depth.
    public init(captionsOf data: ImageDataset, hiddenSize: Int = 64, layers: Int = 2, heads: Int = 4,
                captionDropout: Double = 0.1, captionTemplate: String? = nil, minimumContext: Int = 16) throws {
        let dataset = try Self.captioned(data, template: captionTemplate)
        guard let captions = dataset.captions else {
            throw TrainingError("data \(dataset.name) has no captions: text conditioning needs captioned data "
                                + "(e.g. emoji), or labelled data with a caption template (\"a {}\")")
        }
        let tokenizer: WordTokenizer
        let longest = captions.map { WordTokenizer.tokens($0).count + 2 }.max() ?? 2
        do { tokenizer = try WordTokenizer.build(from: captions, contextLength: Swift.max(longest, minimumContext)) } catch {
            throw TrainingError("\(dataset.name): captions: \(error)")
        }
        self.init(tokenizer: tokenizer,
                  encoder: TextEncoderConfig(vocabSize: tokenizer.vocabulary.count, contextLength: tokenizer.contextLength,
                                             hiddenSize: hiddenSize, numLayers: layers, numHeads: heads),
                  captionDropout: captionDropout, captionTemplate: captionTemplate)
        try validate()
    }

    /// The data with the captions this run trains on (the template's, when there is one).
    public func captioned(_ dataset: ImageDataset) throws -> ImageDataset {
        try Self.captioned(dataset, template: captionTemplate)
    }

    static func captioned(_ dataset: ImageDataset, template: String?) throws -> ImageDataset {
        guard let template else { return dataset }
        do { return try dataset.withTemplateCaptions(templates(template)) } catch { throw TrainingError("\(error)") }
    }

    /// The templates of a "|"-separated list.
    static func templates(_ list: String) -> [String] {
        list.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
    }

    /// Refuses a caption dropout outside [0, 1) (NaN included), naming the field.
    public static func validate(captionDropout: Double) throws {
        guard (0..<1).contains(captionDropout) else { throw TrainingError(field: "caption_dropout", "must be in [0, 1), got \(captionDropout)") }
    }

    /// Refuses settings no run can use, naming the field.
    func validate() throws {
        try Self.validate(captionDropout: captionDropout)
        do { try encoder.validate() } catch { throw TrainingError("text encoder: \(error)") }
        guard encoder.vocabSize == tokenizer.vocabulary.count, encoder.contextLength == tokenizer.contextLength else {
            throw TrainingError("the text encoder takes \(encoder.vocabSize) tokens in a context of \(encoder.contextLength); "
                                + "the tokenizer has \(tokenizer.vocabulary.count) in \(tokenizer.contextLength)")
        }
        if let list = captionTemplate {
            let templates = Self.templates(list)
            if let bad = templates.isEmpty ? list : templates.first(where: { !$0.contains("{}") }) {
                throw TrainingError("caption_template: each template must contain {} (where the class name goes), got \"\(bad)\"")
            }
        }
    }
}
