import Testing
@testable import Training

@Test func moduleLinks() { _ = Training.self }
