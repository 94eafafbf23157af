import Testing
import Training

@Test func moduleLinks() { _ = Training.self }
