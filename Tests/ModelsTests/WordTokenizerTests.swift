import Foundation
import Models
import NeuralNetworks
import Tensors
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

@Suite struct TextEncoderTests {
    /// [B, L] ids give [B, L, hidden] vectors; every parameter gets a gradient; a position's
    /// output depends on the other tokens (self-attention) and on its own position.
    @Test func encodesCaptions() throws {
        let t = try WordTokenizer.build(from: ["a red face", "a blue face", "flag: germany"])
        let encoder = try TextEncoder(TextEncoderConfig(vocabSize: t.vocabulary.count, contextLength: t.contextLength,
                                                        hiddenSize: 16, numLayers: 2, numHeads: 2), generator: PhiloxGenerator(seed: 1))
        let ids = Tensor(integers: try t.encode("a red face") + t.encode("a blue face"), shape: [2, t.contextLength])
        let out = encoder(ids)
        #expect(out.shape == [2, t.contextLength, 16])
        let v = out.scalars, l = t.contextLength * 16
        // Position 0 (<start>) differs between the captions: attention mixes the other tokens in.
        #expect(zip(v[0..<16], v[l..<(l + 16)]).contains { $0 != $1 })
        let (_, gradients) = valueAndGradient(of: encoder) { m in (m(ids) * m(ids)).mean() }
        #expect(Set(gradients.keys) == Set(encoder.namedParameters().map { $0.0 }))
        #expect(encoder.namedParameters().contains { $0.0 == "token_embedding.weight" })
        #expect(throws: ModelError.self) { _ = try TextEncoder(TextEncoderConfig(vocabSize: 10, contextLength: 5, hiddenSize: 10, numHeads: 3)) }
    }
}
