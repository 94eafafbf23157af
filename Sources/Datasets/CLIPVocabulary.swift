import Foundation

/// CLIP's byte-pair vocabulary as PyPI `open_clip_torch` ships it:
/// `open_clip/bpe_simple_vocab_16e6.txt.gz`, OpenAI's merges file (a header line, then the
/// merges), from which `CLIPTokenizer(openAIBPE:)` derives the 49,408-token vocabulary of
/// every Stable Diffusion 1.x/2.x tokenizer. Used where a model comes without its tokenizer
/// folder (a single-file checkpoint with no config folder). `scripts/setup` installs the
/// package into the project's `.venv` without its dependencies (only this file is read).
public enum CLIPVocabulary {
    /// Where the file lies inside a site-packages folder.
    public static let relativePath = "open_clip/bpe_simple_vocab_16e6.txt.gz"
    /// An environment variable that names the file (gzip-compressed) directly.
    public static let environmentVariable = "DIFFUSE_CLIP_BPE"

    /// The installed file: `$DIFFUSE_CLIP_BPE`, or the first found in the project's `.venv` and
    /// the usual site-packages folders.
    public static func locate() throws -> String {
        try PythonPackages.locate(relativePath, override: environmentVariable, package: "open_clip_torch")
    }

    /// The merges file's text, decompressed.
    public static func openAIBPEText(path: String? = nil) throws -> String {
        let file = try path ?? locate()
        let bytes = try Gzip.decompress(contentsOf: file)
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw DatasetError("\(file): not UTF-8 text once decompressed")
        }
        return text
    }
}
