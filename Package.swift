// swift-tools-version:6.1
import PackageDescription

/// Kernels are written with SIMD8<Float>; without a target CPU that has AVX2 + FMA, Swift
/// lowers them to SSE pairs and calls `fmaf` per lane (measured 5x slower). Every x86-64
/// machine this project runs on has AVX2 (Haswell, 2013, and later).
#if arch(x86_64)
let kernelFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
/// TensorsAVX512 is built for AVX-512 and called only where the CPU has it (checked at run time).
let avx512Flags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "skylake-avx512"])]
#else
let kernelFlags: [SwiftSetting] = []
let avx512Flags: [SwiftSetting] = []
#endif

let package = Package(
    name: "Diffuse",
    products: [
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "NeuralNetworks", targets: ["NeuralNetworks"]),
        .library(name: "Diffusion", targets: ["Diffusion"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "ModelIO", targets: ["ModelIO"]),
        .library(name: "ImageIO", targets: ["ImageIO"]),
        .library(name: "Datasets", targets: ["Datasets"]),
        .library(name: "Training", targets: ["Training"]),
        .library(name: "Pipelines", targets: ["Pipelines"]),
        .library(name: "DiffuseServer", targets: ["DiffuseServer"]),
        .executable(name: "diffuse", targets: ["diffuse"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The HTTP server (`diffuse serve`); swift-configuration support left out (not used).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0", traits: ["FullFoundation"]),
    ],
    targets: [
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL"),
        .systemLibrary(name: "COpenMP", path: "Sources/COpenMP"),
        .systemLibrary(name: "CXSMM", path: "Sources/CXSMM"),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG"),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // OpenMPI, loaded at run time (dlopen) by a small C shim: see Sources/CMPI/include/CMPI.h.
        .target(name: "CMPI", path: "Sources/CMPI"),
        // Diffuse's AMX kernels (tap products for bf16 weight gradients), built for AMX by
        // function attributes and called only where the CPU has it: see Sources/CAMX/include/CAMX.h.
        .target(name: "CAMX", path: "Sources/CAMX"),
        .target(name: "TensorsAVX512", swiftSettings: avx512Flags),
        .target(name: "Tensors", dependencies: ["CDNNL", "COpenMP", "CXSMM", "CAMX", "TensorsAVX512"], swiftSettings: kernelFlags),
        .target(name: "NeuralNetworks", dependencies: ["Tensors"], swiftSettings: kernelFlags),
        .target(name: "Diffusion", dependencies: ["Tensors"], swiftSettings: kernelFlags),
        .target(name: "Models", dependencies: ["Tensors", "NeuralNetworks", "Diffusion"], swiftSettings: kernelFlags),
        .target(name: "ModelIO", dependencies: ["Tensors", "NeuralNetworks", "Diffusion", "Models"], swiftSettings: kernelFlags),
        .target(name: "ImageIO", dependencies: ["Tensors", "CPNG"], swiftSettings: kernelFlags),
        .target(name: "Datasets", dependencies: ["Tensors", "ImageIO", "ModelIO", "CZlib"], swiftSettings: kernelFlags),
        .target(name: "Training", dependencies: ["Tensors", "NeuralNetworks", "Diffusion", "Models", "ModelIO", "ImageIO", "Datasets", "CMPI"],
                resources: [.copy("Resources")], swiftSettings: kernelFlags),
        .target(name: "Pipelines", dependencies: ["Tensors", "NeuralNetworks", "Diffusion", "Models", "ModelIO", "ImageIO", "Datasets", "Training"],
                resources: [.copy("Resources")], swiftSettings: kernelFlags),
        .target(name: "DiffuseServer", dependencies: ["Diffusion", "ImageIO", "Pipelines", .product(name: "Hummingbird", package: "hummingbird")],
                resources: [.copy("Resources")]),
        .executableTarget(
            name: "diffuse",
            dependencies: ["Tensors", "NeuralNetworks", "Diffusion", "Models", "ModelIO", "ImageIO", "Datasets", "Training", "Pipelines",
                           "DiffuseServer", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: kernelFlags),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "TensorsAVX512"], resources: [.copy("Fixtures")],
                    swiftSettings: kernelFlags),
        .testTarget(name: "NeuralNetworksTests", dependencies: ["NeuralNetworks", "ModelIO"], resources: [.copy("Fixtures")],
                    swiftSettings: kernelFlags),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion"], resources: [.copy("Fixtures")],
                    swiftSettings: kernelFlags),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "ModelIO", "Diffusion"], resources: [.copy("Fixtures")],
                    swiftSettings: kernelFlags),
        .testTarget(name: "ModelIOTests", dependencies: ["ModelIO"], resources: [.copy("Fixtures")],
                    swiftSettings: kernelFlags),
        .testTarget(name: "ImageIOTests", dependencies: ["ImageIO"], resources: [.copy("Fixtures")],
                    swiftSettings: kernelFlags),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "ModelIO"], resources: [.copy("Fixtures")],
                    swiftSettings: kernelFlags),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Datasets", "Diffusion", "Models", "ModelIO", "ImageIO", "Pipelines"], resources: [.copy("Fixtures")],
                    swiftSettings: kernelFlags),
        .testTarget(name: "PipelinesTests", dependencies: ["Pipelines", "Datasets"], resources: [.copy("Fixtures")],
                    swiftSettings: kernelFlags),
        .testTarget(name: "DiffuseServerTests", dependencies: ["DiffuseServer", "Pipelines", "ImageIO", "Tensors"]),
    ]
)

/// libFuzzer targets (Fuzz/<Name>/main.swift, one parser each), declared only when
/// DIFFUSE_FUZZ is set so that normal builds and `swift test` never see them. `scripts/fuzz`
/// sets it and builds them with AddressSanitizer and libFuzzer's coverage instrumentation,
/// linking libFuzzer without its `main`: SwiftPM names an executable's entry point itself, so
/// each main.swift hands its input callback to libFuzzer's driver (CFuzzer).
if Context.environment["DIFFUSE_FUZZ"] != nil {
    let fuzzTargets: [(name: String, dependency: Target.Dependency)] = [
        ("Safetensors", "ModelIO"), ("NPY", "ModelIO"), ("PNG", "ImageIO"),
        ("Gzip", "Datasets"), ("IDX", "Datasets"), ("Pickle", "ModelIO"),
        ("UNet2DConfig", "Models"), ("UNet2DConditionConfig", "Models"), ("SchedulerConfig", "Diffusion"),
    ]
    package.targets.append(.target(name: "CFuzzer", path: "Fuzz/CFuzzer"))
    for (name, dependency) in fuzzTargets {
        package.targets.append(.executableTarget(name: "Fuzz\(name)", dependencies: ["CFuzzer", dependency], path: "Fuzz/\(name)",
                                                 swiftSettings: kernelFlags))
    }
}
