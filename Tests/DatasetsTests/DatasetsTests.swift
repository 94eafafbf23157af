import Testing
@testable import Datasets

@Test func moduleLinks() { _ = Datasets.self }
