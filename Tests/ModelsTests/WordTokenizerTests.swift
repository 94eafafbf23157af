import Foundation
import Models
import Testing

@Suite struct WordTokenizerTests {
    /// Words and punctuation split, lowercased; the vocabulary is by frequency, then alphabetical.
    @Test func buildsAndEncodes() throws {
        #expect(WordTokenizer.tokens("Flag: Germany") == ["flag", ":", "germany"])
        #expect(WordTokenizer.tokens("smiling face with heart-eyes") == ["smiling", "face", "with", "heart", "-", "eyes"])
        let t = try WordTokenizer.build(from: ["a red face", "a face", "flag: Germany"])
        #expect(t.vocabulary == ["<pad>", "<unk>", "<start>", "<end>", "a", "face", ":", "flag", "germany", "red"])
        #expect(t.contextLength == 5)
        #expect(try t.encode("A face") == [2, 4, 5, 3, 0])
        #expect(try t.encode("blue face") == [2, 1, 5, 3, 0])
        #expect(t.decode(try t.encode("red face")) == "red face")
        let saved = try JSONEncoder().encode(t)
        #expect(try JSONDecoder().decode(WordTokenizer.self, from: saved) == t)
    }

    /// A prompt longer than the context is refused with both lengths; bad vocabularies too.
    @Test func refusesWithTheReason() throws {
        let t = try WordTokenizer.build(from: ["a face"], contextLength: 4)
        #expect(throws: TokenizerError("the prompt \"a red face\" has 3 tokens, but the text encoder's context holds 2 (plus <start> and <end>)")) {
            _ = try t.encode("a red face")
        }
        #expect(throws: TokenizerError.self) { _ = try WordTokenizer(vocabulary: ["a", "b"], contextLength: 4) }
        #expect(throws: TokenizerError.self) { _ = try WordTokenizer(vocabulary: ["<pad>", "<unk>", "<start>", "<end>", "a", "a"], contextLength: 4) }
    }
}
