import Foundation
import Models
import Testing
import Tensors

/// transformers' ids for the prompts of scripts/fixtures/transformers_clip.py.
struct CLIPTokenizerCases: Decodable {
    struct Case: Decodable {
        let pad_token: String
        let ids: [[Int]]
        let padded: [[Int]]?
    }
    let prompts: [String]
    let cases: [String: Case]
    let slow_fast_differ: [Int]

    static let shared: CLIPTokenizerCases = try! JSONDecoder().decode(
        CLIPTokenizerCases.self, from: Data(contentsOf: URL(fileURLWithPath: fixturesFolder() + "/clip-tokenizer-ids.json")))
}

@Suite struct CLIPTokenizerTests {
    static let cases = CLIPTokenizerCases.shared

    static func tokenizer(_ name: String, _ cleanup: CLIPTokenizer.TextCleanup) throws -> CLIPTokenizer {
        try CLIPTokenizer(folder: fixturesFolder() + "/clip-tokenizer-\(name)", cleanup: cleanup)
    }

    /// Every awkward prompt (punctuation, digits, accents, CJK, emoji, contractions,
    /// whitespace runs, control characters, special tokens in the text, the empty prompt, a
    /// prompt far over 77 tokens) gives transformers' ids, unpadded and padded/cut to 77, for
    /// both the slow tokenizer (transformers 4.x without ftfy) and the fast one
    /// (transformers 5), SD 1.x's folder and SD 2.x's (padding with "!").
    @Test(arguments: ["sd1", "sd2"], CLIPTokenizer.TextCleanup.allCases)
    func idsEqualTransformers(name: String, cleanup: CLIPTokenizer.TextCleanup) throws {
        let tokenizer = try Self.tokenizer(name, cleanup)
        let expected = try #require(Self.cases.cases["\(name)-\(cleanup.rawValue)"])
        #expect(tokenizer.padToken == expected.pad_token)
        var mismatches = 0
        for (i, prompt) in Self.cases.prompts.enumerated() {
            let ids = tokenizer.encode(prompt)
            if ids != expected.ids[i] { mismatches += 1 }
            #expect(ids == expected.ids[i], "prompt \(i) \(prompt.debugDescription)")
            #expect(tokenizer.ids(prompt) == expected.padded![i], "prompt \(i) padded")
        }
        let batch = tokenizer(Self.cases.prompts)
        #expect(batch.shape == [Self.cases.prompts.count, 77] && batch.dtype == .int64)
        #expect(batch.integers == expected.padded!.flatMap { $0 })
        print("CLIPTokenizer \(name) \(cleanup): \(Self.cases.prompts.count - mismatches)/\(Self.cases.prompts.count) prompts equal transformers'")
    }

    /// The two transformers tokenizers disagree only on prompts with CJK ideographs, emoji
    /// joiners and other format or control characters, a final capital sigma, a special token
    /// in capitals, NUL or U+FFFD; each cleanup reproduces its own tokenizer there.
    @Test func slowAndFastDifferWhereTransformersDoes() throws {
        let slow = try Self.tokenizer("sd1", .slow), fast = try Self.tokenizer("sd1", .fast)
        let differ = Self.cases.prompts.indices.filter { slow.encode(Self.cases.prompts[$0]) != fast.encode(Self.cases.prompts[$0]) }
        #expect(differ == Self.cases.slow_fast_differ)
        #expect(!differ.isEmpty)
    }

    /// The folder's special tokens: SD 1.x pads with <|endoftext|> (2513 here, 49407 in the
    /// full vocabulary), SD 2.x's special_tokens_map.json says "!" (id 0) over its
    /// tokenizer_config.json; an over-long prompt keeps bos, the first 75 tokens and eos.
    @Test func specialTokensPaddingAndTruncation() throws {
        let sd1 = try Self.tokenizer("sd1", .slow), sd2 = try Self.tokenizer("sd2", .slow)
        #expect(sd1.vocabulary.count == 256 * 2 + 2000 + 2)
        #expect((sd1.bosTokenID, sd1.eosTokenID, sd1.padTokenID, sd1.unknownTokenID) == (2512, 2513, 2513, 2513))
        #expect((sd2.bosTokenID, sd2.eosTokenID, sd2.padTokenID, sd2.padToken) == (2512, 2513, 0, "!"))
        #expect(sd1.modelMaxLength == 77)
        #expect(sd1.ids("") == [2512] + Array(repeating: 2513, count: 76))
        #expect(sd2.ids("") == [2512, 2513] + Array(repeating: 0, count: 75))
        let long = String(repeating: "a photo of a cat ", count: 40)
        let ids = sd1.ids(long)
        #expect(ids.count == 77 && ids.first == 2512 && ids.last == 2513)
        #expect(Array(ids[1..<76]) == Array(sd1.encode(long)[1..<76]))
        #expect(sd1.ids("a cat", maxLength: 5).count == 5)
        #expect(sd1(["a", "b c"], maxLength: 8).shape == [2, 8])
        // "!" is SD 2.x's padding token, so it is split off as a special token there.
        #expect(sd2.encode("wow!") == [2512] + sd2.encode("wow").dropFirst().dropLast() + [0, 2513])
        #expect(sd1.encode("wow!") != sd2.encode("wow!"))
    }

    /// Tokens read back: `tokenize` shows the `</w>` suffix, `decode` undoes the byte
    /// alphabet (accents and emoji come back whole).
    @Test func tokenizeAndDecode() throws {
        let t = try Self.tokenizer("sd1", .slow)
        #expect(t.tokenize("a photo") == ["a</w>", "photo</w>"])
        for text in ["a photo of an astronaut riding a horse", "café naïve", "emoji 🐈 ok", "it's 3.14!"] {
            #expect(t.decode(t.encode(text)).replacingOccurrences(of: " ", with: "") == text.replacingOccurrences(of: " ", with: ""))
        }
        #expect(t.decode(t.encode("a photo of a cat")) == "a photo of a cat")
        #expect(t.decode(t.encode("hi"), skipSpecialTokens: false) == "<|startoftext|>hi <|endoftext|>")
    }

    /// Broken folders are refused naming the file and what is wrong.
    @Test func badFoldersAreRefused() throws {
        let dir = try ConditionalFixtures.copy("clip-tokenizer-sd1")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        func withFile(_ file: String, _ contents: String?, expect fragments: [String]) throws {
            let path = dir + "/" + file
            let original = try Data(contentsOf: URL(fileURLWithPath: path))
            if let contents { try contents.write(toFile: path, atomically: true, encoding: .utf8) } else { try fm.removeItem(atPath: path) }
            ConditionalFixtures.expectRefusal(fragments) { _ = try CLIPTokenizer(folder: dir) }
            try original.write(to: URL(fileURLWithPath: path))
        }
        let merges = try String(contentsOfFile: dir + "/merges.txt", encoding: .utf8)
        let config = try String(contentsOfFile: dir + "/tokenizer_config.json", encoding: .utf8)
        try withFile("vocab.json", nil, expect: ["no vocab.json"])
        try withFile("merges.txt", nil, expect: ["no merges.txt"])
        try withFile("vocab.json", "[1, 2]", expect: ["vocab.json: not a vocabulary"])
        try withFile("merges.txt", merges.replacingOccurrences(of: "\nt h\n", with: "\nt h x\n"), expect: ["merges.txt line 3", "two symbols"])
        try withFile("merges.txt", merges + "zzq qqz\n", expect: ["merges.txt line 2002", "\"zzq\", which is not in vocab.json"])
        try withFile("tokenizer_config.json", config.replacingOccurrences(of: "\"model_max_length\": 77", with: "\"model_max_length\": 1"),
                     expect: ["tokenizer_config.json: model_max_length must be an integer of at least 2"])
        try withFile("special_tokens_map.json", #"{"pad_token": "<|pad|>"}"#, expect: ["pad_token \"<|pad|>\" is not in vocab.json"])
        try withFile("special_tokens_map.json", #"{"bos_token": {"text": "x"}}"#, expect: ["bos_token is an object without a \"content\""])
        _ = try CLIPTokenizer(folder: dir)
        ConditionalFixtures.expectRefusal(["no vocab.json"]) { _ = try CLIPTokenizer(folder: dir + "/missing") }
        // A vocabulary without a byte symbol cannot encode every text.
        ConditionalFixtures.expectRefusal(["lacks the symbol of byte"]) {
            _ = try CLIPTokenizer(vocabulary: ["<|startoftext|>": 0, "<|endoftext|>": 1], merges: [])
        }
    }

    /// With CLIP's full vocabulary (open_clip's bpe_simple_vocab_16e6.txt.gz, where the
    /// project's .venv has open_clip_torch), ids equal transformers' for both cleanups: from
    /// the BPE file alone (`init(openAIBPE:)`, slow) and from a folder with vocab.json and
    /// merges.txt written from it beside the SD 1.x / 2.x configs (`init(folder:)`).
    @Test(.enabled(if: Self.fullBPEPath != nil, "open_clip's bpe_simple_vocab_16e6.txt.gz is not installed"))
    func fullVocabularyEqualsTransformers() throws {
        let text = try Self.gunzip(Self.fullBPEPath!)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("diffuse-clip-full-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let fromBPE = try CLIPTokenizer(openAIBPE: text)
        #expect(fromBPE.vocabulary.count == 49408 && fromBPE.bosTokenID == 49406 && fromBPE.eosTokenID == 49407)
        try JSONSerialization.data(withJSONObject: fromBPE.vocabulary).write(to: URL(fileURLWithPath: dir + "/vocab.json"))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        try (["#version: 0.2"] + lines[1...48894]).joined(separator: "\n").write(toFile: dir + "/merges.txt", atomically: true, encoding: .utf8)
        for name in ["sd1", "sd2"] {
            for file in ["tokenizer_config.json", "special_tokens_map.json"] {
                try? FileManager.default.removeItem(atPath: dir + "/" + file)
                try FileManager.default.copyItem(atPath: fixturesFolder() + "/clip-tokenizer-\(name)/" + file, toPath: dir + "/" + file)
            }
            for cleanup in CLIPTokenizer.TextCleanup.allCases {
                let expected = try #require(Self.cases.cases["\(name)-\(cleanup.rawValue)-full"])
                let t = try CLIPTokenizer(folder: dir, cleanup: cleanup)
                #expect(t.vocabulary == fromBPE.vocabulary && t.padToken == expected.pad_token)
                let alone = try CLIPTokenizer(openAIBPE: text, padToken: expected.pad_token, cleanup: cleanup)
                for (i, prompt) in Self.cases.prompts.enumerated() {
                    #expect(t.encode(prompt) == expected.ids[i], "\(name) \(cleanup) prompt \(i) \(prompt.debugDescription)")
                    if cleanup == .slow { #expect(alone.encode(prompt) == expected.ids[i], "BPE file alone, prompt \(i)") }
                }
            }
        }
    }

    /// open_clip's BPE file in a project or system site-packages folder, if installed.
    static let fullBPEPath: String? = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        var prefixes = [root.path + "/.venv/lib"]
        if let venv = ProcessInfo.processInfo.environment["VIRTUAL_ENV"] { prefixes.insert(venv + "/lib", at: 0) }
        prefixes += ["/usr/local/lib", "/usr/lib"]
        for prefix in prefixes {
            for python in (try? FileManager.default.contentsOfDirectory(atPath: prefix))?.filter({ $0.hasPrefix("python3") }).sorted() ?? [] {
                for site in ["site-packages", "dist-packages"] {
                    let path = "\(prefix)/\(python)/\(site)/open_clip/bpe_simple_vocab_16e6.txt.gz"
                    if FileManager.default.fileExists(atPath: path) { return path }
                }
            }
        }
        return nil
    }()

    static func gunzip(_ path: String) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/gzip")
        process.arguments = ["-dc", path]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return String(decoding: data, as: UTF8.self)
    }
}
