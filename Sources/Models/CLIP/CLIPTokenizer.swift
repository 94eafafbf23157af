import Foundation
import Tensors

/// CLIP's tokenizer (Radford et al. 2021, "Learning Transferable Visual Models From Natural
/// Language Supervision"), as transformers' `CLIPTokenizer` runs it for Stable Diffusion's
/// text encoders: byte-level BPE over lowercased text with a `</w>` end-of-word suffix.
///
///     prompt -> split off special tokens (bos, eos, unk, pad as spelled in the folder)
///            -> clean (`TextCleanup`) -> words by CLIP's pattern
///            -> UTF-8 bytes of each word -> BPE merges by rank -> vocabulary ids
///     ids    =  bos, tokens..., eos                                    (`encode`)
///     padded =  bos, first maxLength - 2 tokens, eos, pad, ..., pad    (`ids(_:maxLength:)`)
///
/// Loaded from a transformers tokenizer folder (`vocab.json`, `merges.txt`, optionally
/// `tokenizer_config.json` and `special_tokens_map.json`; a Stable Diffusion pipeline's
/// `tokenizer/`). The padding token is the folder's: SD 1.x pads with `<|endoftext|>`, SD 2.x
/// with `!` (id 0), and its special_tokens_map.json wins over tokenizer_config.json as in
/// transformers. Ids equal transformers' for the chosen `cleanup` (`.slow` by default).
public struct CLIPTokenizer: Sendable {
    /// Token -> id, as in vocab.json.
    public let vocabulary: [String: Int]
    /// Id -> token (nil where vocab.json skips an id).
    public let tokens: [String?]
    /// The special tokens and their ids: beginning and end of text, padding, unknown.
    public let bosToken: String, eosToken: String, padToken: String, unknownToken: String
    public let bosTokenID: Int, eosTokenID: Int, padTokenID: Int, unknownTokenID: Int
    /// The sequence length prompts are padded or cut to by default (`model_max_length`, 77).
    public let modelMaxLength: Int
    /// How prompts are cleaned (which transformers tokenizer the ids equal).
    public var cleanup: TextCleanup
    let bpe: BytePairEncoding
    /// The special tokens split off before cleanup, longest first, and whether the fast
    /// tokenizer matches them in the cleaned text instead (transformers' `normalized`).
    let specials: [(scalars: [Unicode.Scalar], id: Int, normalized: Bool)]

    /// A tokenizer from a vocabulary and merges (in rank order). Every special token must be
    /// in the vocabulary; so must every byte symbol and every merge's parts and result.
    public init(vocabulary: [String: Int], merges: [(String, String)], bosToken: String = "<|startoftext|>",
                eosToken: String = "<|endoftext|>", padToken: String = "<|endoftext|>", unknownToken: String = "<|endoftext|>",
                modelMaxLength: Int = 77, cleanup: TextCleanup = .slow) throws {
        let numbered = merges.enumerated().map { (first: $0.element.0, second: $0.element.1, line: $0.offset + 1) }
        try self.init(vocabulary: vocabulary, numberedMerges: numbered, bosToken: bosToken, eosToken: eosToken, padToken: padToken,
                      unknownToken: unknownToken, modelMaxLength: modelMaxLength, cleanup: cleanup)
    }

    init(vocabulary: [String: Int], numberedMerges: [(first: String, second: String, line: Int)], bosToken: String,
         eosToken: String, padToken: String, unknownToken: String, modelMaxLength: Int, cleanup: TextCleanup,
         normalizedSpecialTokens: Set<String> = []) throws {
        guard modelMaxLength >= 2 else {
            throw TokenizerError("model_max_length must be at least 2 (bos and eos), got \(modelMaxLength)")
        }
        var tokens = [String?](repeating: nil, count: (vocabulary.values.max() ?? -1) + 1)
        for (token, id) in vocabulary {
            guard id >= 0 else { throw TokenizerError("vocab.json gives \"\(token)\" the negative id \(id)") }
            if let other = tokens[id] {
                throw TokenizerError("vocab.json gives id \(id) to both \"\(min(other, token))\" and \"\(max(other, token))\"")
            }
            tokens[id] = token
        }
        func id(_ token: String, _ field: String) throws -> Int {
            guard let id = vocabulary[token] else { throw TokenizerError("\(field) \"\(token)\" is not in vocab.json") }
            return id
        }
        bosTokenID = try id(bosToken, "bos_token")
        eosTokenID = try id(eosToken, "eos_token")
        padTokenID = try id(padToken, "pad_token")
        unknownTokenID = try id(unknownToken, "unk_token")
        bpe = try BytePairEncoding(vocabulary: vocabulary, merges: numberedMerges)
        (self.vocabulary, self.tokens, self.modelMaxLength, self.cleanup) = (vocabulary, tokens, modelMaxLength, cleanup)
        (self.bosToken, self.eosToken, self.padToken, self.unknownToken) = (bosToken, eosToken, padToken, unknownToken)
        var specials = [(scalars: [Unicode.Scalar], id: Int, normalized: Bool)]()
        for (token, id) in [(bosToken, bosTokenID), (eosToken, eosTokenID), (unknownToken, unknownTokenID), (padToken, padTokenID)]
        where !token.isEmpty && !specials.contains(where: { $0.id == id }) {
            specials.append((Array(token.unicodeScalars), id, normalizedSpecialTokens.contains(token)))
        }
        self.specials = specials.sorted { $0.scalars.count > $1.scalars.count }
    }

    // MARK: Encoding

    /// The ids of `text` between bos and eos, neither padded nor cut (transformers'
    /// `tokenizer(text).input_ids`).
    public func encode(_ text: String) -> [Int] {
        [bosTokenID] + contentIDs(text) + [eosTokenID]
    }

    /// The ids of `text` padded or cut to `maxLength` (default `modelMaxLength`): bos, at most
    /// maxLength - 2 tokens, eos, then padding, as diffusers calls the tokenizer
    /// (`padding="max_length", truncation=True`).
    public func ids(_ text: String, maxLength: Int? = nil) -> [Int] {
        let length = maxLength ?? modelMaxLength
        precondition(length >= 2, "CLIPTokenizer: maxLength must be at least 2 (bos and eos), got \(length)")
        let content = contentIDs(text).prefix(length - 2)
        let ids = [bosTokenID] + content + [eosTokenID]
        return ids + Array(repeating: padTokenID, count: length - ids.count)
    }

    /// The padded ids of each prompt as an int64 tensor [prompts, maxLength]: the text
    /// encoder's input.
    public func callAsFunction(_ prompts: [String], maxLength: Int? = nil) -> Tensor {
        let length = maxLength ?? modelMaxLength
        return Tensor(integers: prompts.flatMap { ids($0, maxLength: length) }, shape: [prompts.count, length])
    }

    /// The token strings of `text` (no bos or eos), e.g. ["a</w>", "photo</w>"].
    public func tokenize(_ text: String) -> [String] {
        contentIDs(text).map { tokens[$0] ?? "" }
    }

    /// The text of `ids`: tokens joined, bytes decoded as UTF-8 (invalid ones replaced),
    /// `</w>` read as a space; special tokens left out unless `skipSpecialTokens` is false.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        let special = Set([bosTokenID, eosTokenID, padTokenID, unknownTokenID])
        var bytes = [UInt8]()
        for id in ids where id >= 0 && id < tokens.count {
            guard let token = tokens[id], !(skipSpecialTokens && special.contains(id)) else { continue }
            if special.contains(id) {
                bytes += Array(token.utf8)
                continue
            }
            for ch in token.replacingOccurrences(of: BytePairEncoding.endOfWord, with: " ") {
                if let b = ByteAlphabet.bytes[ch] { bytes.append(b) } else { bytes += Array(String(ch).utf8) }
            }
        }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The ids of the text's tokens. The slow tokenizer splits off every special token
    /// first, then cleans the stretches between them; the fast one splits off those whose
    /// definition is not `normalized`, cleans the stretches, then splits off the normalized
    /// ones (so "<|STARTOFTEXT|>" is the bos token where the folder marks it normalized).
    func contentIDs(_ text: String) -> [Int] {
        var ids = [Int]()
        func encodeWords(_ cleaned: [Unicode.Scalar]) {
            for word in Self.words(cleaned: cleaned, cleanup: cleanup) { ids += wordIDs(word) }
        }
        let raw = cleanup == .slow ? specials.map { ($0.scalars, $0.id) } : specials.filter { !$0.normalized }.map { ($0.scalars, $0.id) }
        let normalized = cleanup == .slow ? [] : specials.filter(\.normalized).map { ($0.scalars, $0.id) }
        for segment in Self.split(Array(text.unicodeScalars), on: raw) {
            switch segment {
            case .special(let id): ids.append(id)
            case .text(let stretch) where cleanup == .slow: encodeWords(Self.slowCleanup(stretch))
            case .text(let stretch):
                for part in Self.split(Self.fastCleanup(stretch), on: normalized) {
                    switch part {
                    case .special(let id): ids.append(id)
                    case .text(let cleaned): encodeWords(cleaned)
                    }
                }
            }
        }
        return ids
    }

    /// One word's ids: CLIP's two special tokens stand for themselves (the pattern keeps
    /// them whole), any other word is byte-pair encoded.
    func wordIDs(_ word: [Unicode.Scalar]) -> [Int] {
        if Self.patternSpecials.contains(word), let id = vocabulary[String(String.UnicodeScalarView(word))] { return [id] }
        return bpe.encode(word: String(String.UnicodeScalarView(word)).utf8).map(Int.init)
    }
}
