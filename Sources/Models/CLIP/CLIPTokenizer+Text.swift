import Foundation

/// The text side of `CLIPTokenizer`: cleaning a prompt and cutting it into the words that
/// byte-pair encoding then splits into tokens.
extension CLIPTokenizer {
    /// How a prompt is cleaned before it is split into words. transformers has two CLIP
    /// tokenizers that differ only here (on plain English prompts they agree):
    public enum TextCleanup: String, Sendable, CaseIterable, Codable {
        /// transformers' slow (Python) `CLIPTokenizer` when ftfy is not installed (its
        /// BasicTokenizer fallback), the tokenizer of Stable Diffusion pipelines under
        /// transformers 4.x: control and format characters (category C*, e.g. zero-width
        /// spaces and emoji joiners), NUL and U+FFFD are dropped; whitespace becomes a space;
        /// CJK ideographs become words of their own; NFC; each whitespace-separated word is
        /// lowercased as Python's `str.lower` does (a final capital sigma becomes ς).
        /// With ftfy installed transformers first repairs mojibake instead: not reproduced.
        case slow
        /// transformers' fast tokenizer (`CLIPTokenizerFast` in 4.x, the only `CLIPTokenizer`
        /// of transformers 5), the `tokenizers` library's pipeline: NFC, every run of
        /// White_Space characters to one space, each character lowercased on its own (Σ is
        /// always σ); nothing is dropped. A special token spelled in capitals falls apart
        /// into `<|`, the word and `|>`, as its byte-level pre-tokenizer splits it.
        case fast
    }

    /// The two special tokens that CLIP's pattern keeps whole when they survive cleanup
    /// (e.g. "<|ENDOFTEXT|>" lowercased).
    static let patternSpecials: [[Unicode.Scalar]] = ["<|startoftext|>", "<|endoftext|>"].map { Array($0.unicodeScalars) }

    /// A stretch of text or a special token, as `split(_:on:)` cuts a text.
    enum Segment {
        case text([Unicode.Scalar])
        case special(Int)
    }

    /// `t` cut at every occurrence of `specials` (at each position the longest that matches,
    /// as transformers' trie and tokenizers' added vocabulary match).
    static func split(_ t: [Unicode.Scalar], on specials: [(scalars: [Unicode.Scalar], id: Int)]) -> [Segment] {
        guard !specials.isEmpty else { return [.text(t)] }
        var segments = [Segment]()
        var start = 0, i = 0
        while i < t.count {
            if let special = specials.first(where: { t[i...].starts(with: $0.scalars) }) {
                if i > start { segments.append(.text(Array(t[start..<i]))) }
                segments.append(.special(special.id))
                i += special.scalars.count
                start = i
            } else {
                i += 1
            }
        }
        if t.count > start { segments.append(.text(Array(t[start..<t.count]))) }
        return segments
    }

    /// The words of a cleaned text, cut by CLIP's pattern
    ///
    ///     <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
    ///
    /// (alternatives tried in order at each position, whitespace between matches dropped);
    /// the fast tokenizer then cuts each match again by GPT-2's pattern, which leaves all but
    /// spelled-out special tokens whole.
    static func words(cleaned: [Unicode.Scalar], cleanup: TextCleanup) -> [[Unicode.Scalar]] {
        let pieces = patternPieces(cleaned)
        return cleanup == .fast ? pieces.flatMap(gpt2Pieces) : pieces
    }

    // MARK: Cleanup

    /// transformers' `BasicTokenizer(strip_accents=False, do_split_on_punc=False).tokenize`
    /// joined by spaces: `_clean_text`, `_tokenize_chinese_chars`, NFC, `str.split()`,
    /// `str.lower()` per word.
    static func slowCleanup(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var kept = String.UnicodeScalarView()
        for s in text {
            if s.value == 0 || s.value == 0xFFFD || isControl(s) { continue }
            if isBasicWhitespace(s) {
                kept.append(" ")
            } else if isCJKIdeograph(s) {
                kept.append(" ")
                kept.append(s)
                kept.append(" ")
            } else {
                kept.append(s)
            }
        }
        let normalized = Array(String(kept).precomposedStringWithCanonicalMapping.unicodeScalars)
        let words = normalized.split(whereSeparator: isPythonSpace)
        var out = [Unicode.Scalar]()
        for (i, word) in words.enumerated() {
            if i > 0 { out.append(" ") }
            out += pythonLowercased(Array(word))
        }
        return out
    }

    /// tokenizers' normalizers `NFC`, `Replace(\s+, " ")`, `Lowercase` (per character).
    static func fastCleanup(_ text: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out = [Unicode.Scalar]()
        var inSpace = false
        for s in String(String.UnicodeScalarView(text)).precomposedStringWithCanonicalMapping.unicodeScalars {
            if s.properties.isWhitespace {
                if !inSpace { out.append(" ") }
                inSpace = true
                continue
            }
            inSpace = false
            if s.properties.changesWhenLowercased {
                out += s.properties.lowercaseMapping.unicodeScalars
            } else {
                out.append(s)
            }
        }
        return out
    }

    /// Python's `str.lower()`: full lowercase mappings, and Σ as ς in the Final_Sigma context
    /// (after a cased letter and not before one, case-ignorable characters skipped).
    static func pythonLowercased(_ scalars: [Unicode.Scalar]) -> [Unicode.Scalar] {
        var out = [Unicode.Scalar]()
        out.reserveCapacity(scalars.count)
        for (i, s) in scalars.enumerated() {
            if s == "\u{03A3}" {
                var j = i - 1
                while j >= 0 && scalars[j].properties.isCaseIgnorable { j -= 1 }
                var final = j >= 0 && scalars[j].properties.isCased
                if final {
                    j = i + 1
                    while j < scalars.count && scalars[j].properties.isCaseIgnorable { j += 1 }
                    final = j == scalars.count || !scalars[j].properties.isCased
                }
                out.append(final ? "\u{03C2}" : "\u{03C3}")
            } else if s.properties.changesWhenLowercased {
                out += s.properties.lowercaseMapping.unicodeScalars
            } else {
                out.append(s)
            }
        }
        return out
    }

    /// BasicTokenizer's `_is_control`: category C* except tab, newline and carriage return.
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .surrogate, .privateUse, .unassigned: return true
        default: return false
        }
    }

    /// BasicTokenizer's `_is_whitespace`: space, tab, newline, carriage return, category Zs.
    static func isBasicWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == " " || s == "\t" || s == "\n" || s == "\r" || s.properties.generalCategory == .spaceSeparator
    }

    /// Python's `str.isspace()` (bidirectional class WS, B or S, or category Zs), which
    /// `str.split()` splits on.
    static func isPythonSpace(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x09...0x0D, 0x1C...0x20, 0x85, 0xA0, 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    /// BasicTokenizer's `_is_chinese_char`: the CJK Unified Ideographs blocks and their
    /// extensions A-E and compatibility blocks (not kana or hangul).
    static func isCJKIdeograph(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F, 0x2B820...0x2CEAF,
             0xF900...0xFAFF, 0x2F800...0x2FA1F: return true
        default: return false
        }
    }

    // MARK: Patterns

    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    /// `\s` of both regex engines here (Python's `regex`, Oniguruma): the White_Space property.
    static func isSpace(_ s: Unicode.Scalar) -> Bool { s.properties.isWhitespace }

    static func isOther(_ s: Unicode.Scalar) -> Bool { !isSpace(s) && !isLetter(s) && !isNumber(s) }

    /// 0 letter, 1 number, 2 space, 3 anything else: the runs GPT-2's pattern matches.
    static func characterClass(_ s: Unicode.Scalar) -> Int {
        isLetter(s) ? 0 : isNumber(s) ? 1 : isSpace(s) ? 2 : 3
    }

    /// The length of the contraction ('s 't 're 've 'm 'll 'd) at `i`, or 0.
    static func contractionLength(_ t: [Unicode.Scalar], at i: Int) -> Int {
        guard t[i] == "'", i + 1 < t.count else { return 0 }
        switch t[i + 1] {
        case "s", "t", "m", "d": return 2
        case "r", "v": return i + 2 < t.count && t[i + 2] == "e" ? 3 : 0
        case "l": return i + 2 < t.count && t[i + 2] == "l" ? 3 : 0
        default: return 0
        }
    }

    /// The matches of CLIP's pattern, in order.
    static func patternPieces(_ t: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var pieces = [[Unicode.Scalar]]()
        var i = 0
        func run(_ accept: (Unicode.Scalar) -> Bool) -> Int {
            var j = i
            while j < t.count && accept(t[j]) { j += 1 }
            return j
        }
        while i < t.count {
            var end: Int
            if isSpace(t[i]) {
                i += 1
                continue
            } else if let special = patternSpecials.first(where: { t[i...].starts(with: $0) }) {
                end = i + special.count
            } else if case let n = contractionLength(t, at: i), n > 0 {
                end = i + n
            } else if isLetter(t[i]) {
                end = run(isLetter)
            } else if isNumber(t[i]) {
                end = i + 1
            } else {
                end = run(isOther)
            }
            pieces.append(Array(t[i..<end]))
            i = end
        }
        return pieces
    }

    /// A piece cut again by GPT-2's pattern, which the fast tokenizer's byte-level
    /// pre-tokenizer applies: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+`
    /// (pieces hold no spaces here, so the optional leading space never applies).
    static func gpt2Pieces(_ t: [Unicode.Scalar]) -> [[Unicode.Scalar]] {
        var pieces = [[Unicode.Scalar]]()
        var i = 0
        while i < t.count {
            var j = i
            let n = contractionLength(t, at: i)
            if n > 0 {
                j = i + n
            } else {
                let kind = characterClass(t[i])
                while j < t.count && characterClass(t[j]) == kind { j += 1 }
            }
            pieces.append(Array(t[i..<j]))
            i = j
        }
        return pieces
    }
}
