import Testing
import Pipelines

@Test func moduleLinks() { _ = Pipelines.self }
