import Foundation
import Tensors

/// A word-level tokenizer for short captions ("smiling face with heart-eyes", "a sneaker"):
/// text is lowercased and split into words (runs of letters and digits) and punctuation
/// marks (each its own token), words are looked up in a vocabulary built from the training
/// captions, and a caption becomes
///
///     <start> w1 w2 ... wn <end> <pad> ... <pad>      (contextLength ids)
///
/// with unknown words as <unk>. A caption longer than the context is refused, never cut.
/// Saved as `tokenizer.json` beside a text encoder.
public struct WordTokenizer: Codable, Equatable, Sendable {
    /// Tokens by id: 0 <pad>, 1 <unk>, 2 <start>, 3 <end>, then the words, most frequent first.
    public let vocabulary: [String]
    /// Ids per encoded caption, including <start> and <end>.
    public let contextLength: Int
    private let index: [String: Int]

    public static let pad = 0, unknown = 1, start = 2, end = 3
    public static let specials = ["<pad>", "<unk>", "<start>", "<end>"]

    enum CodingKeys: String, CodingKey { case vocabulary, contextLength = "context_length" }

    public init(vocabulary: [String], contextLength: Int) throws {
        guard vocabulary.count >= 4, Array(vocabulary.prefix(4)) == Self.specials else {
            throw TokenizerError("a vocabulary starts with \(Self.specials), found \(Array(vocabulary.prefix(4)))")
        }
        guard contextLength >= 3 else { throw TokenizerError("the context must hold at least 3 tokens, got \(contextLength)") }
        var index = [String: Int]()
        for (i, token) in vocabulary.enumerated() {
            guard index.updateValue(i, forKey: token) == nil else { throw TokenizerError("the vocabulary lists \"\(token)\" twice") }
        }
        (self.vocabulary, self.contextLength, self.index) = (vocabulary, contextLength, index)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(vocabulary: c.decode([String].self, forKey: .vocabulary), contextLength: c.decode(Int.self, forKey: .contextLength))
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(vocabulary, forKey: .vocabulary)
        try c.encode(contextLength, forKey: .contextLength)
    }

    /// A tokenizer whose vocabulary is every word of `captions` seen at least `minCount`
    /// times (most frequent first, ties alphabetical), and whose context fits the longest
    /// caption unless `contextLength` is given.
    public static func build(from captions: [String], contextLength: Int? = nil, minCount: Int = 1) throws -> WordTokenizer {
        var counts = [String: Int]()
        var longest = 0
        for caption in captions {
            let words = tokens(caption)
            longest = max(longest, words.count)
            for w in words { counts[w, default: 0] += 1 }
        }
        let words = counts.filter { $0.value >= minCount }.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map(\.key)
        return try WordTokenizer(vocabulary: specials + words, contextLength: contextLength ?? longest + 2)
    }

    /// The caption's tokens: lowercase words (letters and digits) and punctuation marks.
    public static func tokens(_ text: String) -> [String] {
        var out = [String](), word = ""
        for ch in text.lowercased() {
            if ch.isLetter || ch.isNumber {
                word.append(ch)
                continue
            }
            if !word.isEmpty { out.append(word); word = "" }
            if ch.isPunctuation || ch.isSymbol { out.append(String(ch)) }
        }
        if !word.isEmpty { out.append(word) }
        return out
    }

    /// The ids of `text`: <start>, its tokens (unknown ones as <unk>), <end>, padding to
    /// `contextLength`. Throws when the caption needs more than the context holds.
    public func encode(_ text: String) throws -> [Int] {
        let words = Self.tokens(text)
        guard words.count + 2 <= contextLength else {
            throw TokenizerError("the prompt \"\(text)\" has \(words.count) tokens, but the text encoder's context holds "
                                 + "\(contextLength - 2) (plus <start> and <end>)")
        }
        let ids = [Self.start] + words.map { index[$0] ?? Self.unknown } + [Self.end]
        return ids + Array(repeating: Self.pad, count: contextLength - ids.count)
    }

    /// The empty caption's ids, <start> <end> <pad>...: what a dropped caption becomes in
    /// training, and the unconditional input of classifier-free guidance.
    public var emptyCaption: [Int] {
        [Self.start, Self.end] + Array(repeating: Self.pad, count: contextLength - 2)
    }

    /// The text of `ids` (specials dropped).
    public func decode(_ ids: [Int]) -> String {
        ids.filter { $0 > Self.end && $0 < vocabulary.count }.map { vocabulary[$0] }.joined(separator: " ")
    }

    /// Reads `tokenizer.json`.
    public static func load(_ path: String) throws -> WordTokenizer {
        guard let data = FileManager.default.contents(atPath: path) else { throw TokenizerError("\(path): no such file") }
        do { return try JSONDecoder().decode(WordTokenizer.self, from: data) } catch let e as TokenizerError {
            throw TokenizerError("\(path): \(e.message)")
        } catch {
            throw TokenizerError("\(path): not a tokenizer.json: \(ErrorText.describe(error))")
        }
    }
}

/// A tokenizer that cannot be built, read or used, with the reason.
public struct TokenizerError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
