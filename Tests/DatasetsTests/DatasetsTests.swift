import Testing
import Datasets

@Test func moduleLinks() { _ = Datasets.self }
