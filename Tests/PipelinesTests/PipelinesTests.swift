import Testing
@testable import Pipelines

@Test func moduleLinks() { _ = Pipelines.self }
