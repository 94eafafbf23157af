/// Byte-level byte-pair encoding with an end-of-word suffix, as CLIP uses it (Radford et al.
/// 2021; the BPE of Sennrich et al. 2016 over GPT-2's byte alphabet): a word's UTF-8 bytes
/// become one symbol each (the last one with `</w>` appended), then the adjacent pair with
/// the lowest merge rank is merged everywhere in the word, left to right, until no adjacent
/// pair has a rank. transformers' `CLIPTokenizer.bpe` and tokenizers' `BPE` model (with
/// `end_of_word_suffix="</w>"`) compute the same.
///
/// Symbols are vocabulary ids: every byte symbol, with and without the suffix, and every
/// merge's two parts and result must be in the vocabulary (checked when built).
struct BytePairEncoding: Sendable {
    /// The suffix that marks a word's last symbol.
    static let endOfWord = "</w>"

    /// The vocabulary id of each byte's symbol, and of the symbol with `</w>`.
    let byteIDs: [Int32], finalByteIDs: [Int32]
    /// For a pair of ids (first << 32 | second): its rank and the id of the merged symbol.
    let merges: [UInt64: (rank: Int32, merged: Int32)]

    /// Builds the tables from the vocabulary and the merges (in rank order, as in
    /// merges.txt); a missing symbol is an error naming it and the merge's line.
    init(vocabulary: [String: Int], merges pairs: [(first: String, second: String, line: Int)]) throws {
        let alphabet = ByteAlphabet.characters
        var byteIDs = [Int32](), finalByteIDs = [Int32]()
        for (byte, ch) in alphabet.enumerated() {
            guard let id = vocabulary[String(ch)], let last = vocabulary[String(ch) + Self.endOfWord] else {
                throw TokenizerError("vocab.json lacks the symbol of byte \(byte) (\"\(ch)\" or \"\(ch)</w>\"); a byte-level BPE "
                                     + "vocabulary holds all 256 bytes with and without </w>")
            }
            byteIDs.append(Int32(id))
            finalByteIDs.append(Int32(last))
        }
        var table = [UInt64: (rank: Int32, merged: Int32)](minimumCapacity: pairs.count)
        for (rank, pair) in pairs.enumerated() {
            guard let a = vocabulary[pair.first], let b = vocabulary[pair.second], let merged = vocabulary[pair.first + pair.second] else {
                let missing = [pair.first, pair.second, pair.first + pair.second].first(where: { vocabulary[$0] == nil })!
                throw TokenizerError("merges.txt line \(pair.line): \"\(pair.first) \(pair.second)\" uses \"\(missing)\", "
                                     + "which is not in vocab.json")
            }
            table[Self.key(Int32(a), Int32(b))] = (Int32(rank), Int32(merged))  // a repeated merge keeps its last rank, as both transformers tokenizers
        }
        (self.byteIDs, self.finalByteIDs, self.merges) = (byteIDs, finalByteIDs, table)
    }

    static func key(_ a: Int32, _ b: Int32) -> UInt64 { UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b)) }

    /// The vocabulary ids of one word (its UTF-8 bytes, not empty).
    func encode<Bytes: BidirectionalCollection<UInt8>>(word bytes: Bytes) -> [Int32] {
        var symbols = bytes.map { byteIDs[Int($0)] }
        guard let last = bytes.last else { return [] }
        symbols[symbols.count - 1] = finalByteIDs[Int(last)]
        while symbols.count > 1 {
            // The adjacent pair of lowest rank ...
            var best: (rank: Int32, first: Int32, second: Int32, merged: Int32)? = nil
            for i in 0..<(symbols.count - 1) {
                if let m = merges[Self.key(symbols[i], symbols[i + 1])], m.rank < best?.rank ?? .max {
                    best = (m.rank, symbols[i], symbols[i + 1], m.merged)
                }
            }
            guard let best else { break }
            // ... merged at every occurrence, left to right, without overlaps.
            var merged = [Int32]()
            merged.reserveCapacity(symbols.count)
            var i = 0
            while i < symbols.count {
                if i + 1 < symbols.count && symbols[i] == best.first && symbols[i + 1] == best.second {
                    merged.append(best.merged)
                    i += 2
                } else {
                    merged.append(symbols[i])
                    i += 1
                }
            }
            symbols = merged
        }
        return symbols
    }
}

/// GPT-2's reversible map from bytes to printable characters, which byte-level BPE
/// vocabularies are written in: the printable bytes `!`...`~`, `¡`...`¬` and `®`...`ÿ` stand
/// for themselves; the other 68 (controls, space, soft hyphen ...) become U+0100 onwards, in
/// byte order. Vocabulary ids of OpenAI's CLIP follow this order: first the 188 printable
/// bytes, then the others.
enum ByteAlphabet {
    /// The character of each byte, indexed by byte.
    static let characters: [Character] = {
        var chars = [Character](repeating: " ", count: 256)
        var next: UInt32 = 256
        for byte in 0..<256 {
            if isPrintable(byte) {
                chars[byte] = Character(Unicode.Scalar(UInt32(byte))!)
            } else {
                chars[byte] = Character(Unicode.Scalar(next)!)
                next += 1
            }
        }
        return chars
    }()

    /// The bytes in vocabulary order (printable ones first, as `bytes_to_unicode` lists them).
    static let vocabularyOrder: [Int] = (0..<256).filter(isPrintable) + (0..<256).filter { !isPrintable($0) }

    /// The byte each alphabet character stands for.
    static let bytes: [Character: UInt8] = Dictionary(uniqueKeysWithValues: characters.enumerated().map { ($1, UInt8($0)) })

    private static func isPrintable(_ b: Int) -> Bool {
        (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b)
    }
}
