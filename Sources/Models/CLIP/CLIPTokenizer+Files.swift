import Foundation
import Tensors

/// Reading a transformers CLIP tokenizer folder.
extension CLIPTokenizer {
    /// Loads a transformers tokenizer folder (or a Stable Diffusion pipeline folder with a
    /// `tokenizer/` inside):
    ///
    /// - `vocab.json`: token -> id;
    /// - `merges.txt`: one merge per line, "first second", in rank order, after a
    ///   `#version` header line (as both transformers tokenizers read it);
    /// - `tokenizer_config.json`, then `special_tokens_map.json` over it (both optional): the
    ///   special tokens `bos_token`, `eos_token`, `pad_token`, `unk_token` (a string or an
    ///   object with `content`; absent or null keeps transformers' default) and
    ///   `model_max_length` (77 where absent or transformers' "no limit" sentinel, ≥ 1e6).
    ///
    /// Errors name the file, and the line or field.
    public init(folder: String, cleanup: TextCleanup = .slow) throws {
        let fm = FileManager.default
        var dir = folder
        if !fm.fileExists(atPath: dir + "/vocab.json"), fm.fileExists(atPath: dir + "/tokenizer/vocab.json") { dir += "/tokenizer" }
        for file in ["vocab.json", "merges.txt"] where !fm.fileExists(atPath: dir + "/" + file) {
            throw TokenizerError("\(folder): no \(file) (a CLIP tokenizer folder holds vocab.json and merges.txt, as transformers' "
                                 + "save_pretrained writes them)")
        }
        let vocabulary = try Self.readVocabulary(dir + "/vocab.json")
        let merges = try Self.readMerges(dir + "/merges.txt")
        var settings = SpecialSettings()
        for file in ["tokenizer_config.json", "special_tokens_map.json"] where fm.fileExists(atPath: dir + "/" + file) {
            try settings.read(dir + "/" + file)
        }
        do {
            try self.init(vocabulary: vocabulary, numberedMerges: merges, bosToken: settings.bos, eosToken: settings.eos,
                          padToken: settings.pad, unknownToken: settings.unk, modelMaxLength: settings.maxLength, cleanup: cleanup,
                          normalizedSpecialTokens: settings.normalizedTokens)
        } catch let e as TokenizerError {
            throw TokenizerError("\(dir): \(e.message)")
        }
    }

    /// A tokenizer from OpenAI's BPE file alone (`bpe_simple_vocab_16e6.txt`, decompressed;
    /// open_clip ships it): a header line, then the merges, of which the first 48,894 count.
    /// The vocabulary is derived as OpenAI's `SimpleTokenizer` derives it: the 256 byte
    /// symbols in `bytes_to_unicode` order, the same with `</w>`, each merge's result, then
    /// `<|startoftext|>` and `<|endoftext|>` (49,408 tokens: the ids of transformers'
    /// openai/clip-vit-* vocab.json).
    public init(openAIBPE text: String, padToken: String = "<|endoftext|>", cleanup: TextCleanup = .slow) throws {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        var merges = [(first: String, second: String, line: Int)]()
        for (i, line) in lines.enumerated().dropFirst().prefix(49152 - 256 - 2) {
            let parts = line.split(separator: " ")
            guard parts.count == 2 else {
                if line.isEmpty { continue }
                throw TokenizerError("BPE file line \(i + 1): a merge is two symbols separated by a space, got \"\(line)\"")
            }
            merges.append((String(parts[0]), String(parts[1]), i + 1))
        }
        let alphabet = ByteAlphabet.vocabularyOrder.map { String(ByteAlphabet.characters[$0]) }
        let tokens = alphabet + alphabet.map { $0 + BytePairEncoding.endOfWord } + merges.map { $0.first + $0.second }
            + ["<|startoftext|>", "<|endoftext|>"]
        var vocabulary = [String: Int](minimumCapacity: tokens.count)
        for (id, token) in tokens.enumerated() { vocabulary[token] = id }  // a repeated merge result keeps its last id, as there
        try self.init(vocabulary: vocabulary, numberedMerges: merges, bosToken: "<|startoftext|>", eosToken: "<|endoftext|>",
                      padToken: padToken, unknownToken: "<|endoftext|>", modelMaxLength: 77, cleanup: cleanup)
    }

    static func readVocabulary(_ path: String) throws -> [String: Int] {
        do {
            return try JSONDecoder().decode([String: Int].self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw TokenizerError("\(path): not a vocabulary (a JSON object of token -> integer id): \(ErrorText.describe(error))")
        }
    }

    /// The merges of merges.txt with their line numbers; blank lines are skipped.
    static func readMerges(_ path: String) throws -> [(first: String, second: String, line: Int)] {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw TokenizerError("\(path): cannot read as UTF-8 text: \(ErrorText.describe(error))")
        }
        var merges = [(first: String, second: String, line: Int)]()
        for (i, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            if i == 0 && line.hasPrefix("#version") { continue }
            let parts = line.unicodeScalars.split(whereSeparator: { $0.properties.isWhitespace })
            if parts.isEmpty { continue }
            guard parts.count == 2 else {
                throw TokenizerError("\(path) line \(i + 1): a merge is two symbols separated by a space, got \"\(line)\"")
            }
            merges.append((String(String.UnicodeScalarView(parts[0])), String(String.UnicodeScalarView(parts[1])), i + 1))
        }
        return merges
    }

    /// The special tokens and the length limit, with transformers' `CLIPTokenizer` defaults.
    struct SpecialSettings {
        var bos = "<|startoftext|>", eos = "<|endoftext|>", pad = "<|endoftext|>", unk = "<|endoftext|>"
        var maxLength = 77
        /// Whether each token's definition says `normalized` (a plain string does not).
        var normalized = [String: Bool]()

        /// The tokens the fast tokenizer matches after cleanup: where one content has several
        /// definitions, the last of bos, eos, unk, pad decides (tokenizers keeps the last added).
        var normalizedTokens: Set<String> {
            var flags = [String: Bool]()
            for (key, token) in [("bos_token", bos), ("eos_token", eos), ("unk_token", unk), ("pad_token", pad)] {
                flags[token] = normalized[key] ?? false
            }
            return Set(flags.filter(\.value).keys)
        }

        mutating func read(_ path: String) throws {
            let object: [String: Any]
            do {
                guard let o = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any] else {
                    throw TokenizerError("not a JSON object")
                }
                object = o
            } catch {
                throw TokenizerError("\(path): not a tokenizer config: \(ErrorText.describe(error))")
            }
            func token(_ key: String) throws -> String? {
                switch object[key] {
                case nil, is NSNull: return nil
                case let s as String:
                    normalized[key] = false
                    return s
                case let d as [String: Any]:
                    if let s = d["content"] as? String {
                        normalized[key] = (d["normalized"] as? Bool) ?? false
                        return s
                    }
                    throw TokenizerError("\(path): \(key) is an object without a \"content\" string")
                default: throw TokenizerError("\(path): \(key) must be a string or an object with \"content\"")
                }
            }
            bos = try token("bos_token") ?? bos
            eos = try token("eos_token") ?? eos
            pad = try token("pad_token") ?? pad
            unk = try token("unk_token") ?? unk
            switch object["model_max_length"] {
            case nil, is NSNull: break
            case let n as NSNumber:
                let value = n.doubleValue
                guard value.isFinite, value >= 2, value == value.rounded() else {
                    throw TokenizerError("\(path): model_max_length must be an integer of at least 2 (bos and eos), got \(n)")
                }
                if value < 1e6 { maxLength = Int(value) }
            default: throw TokenizerError("\(path): model_max_length must be a number")
            }
        }
    }
}
