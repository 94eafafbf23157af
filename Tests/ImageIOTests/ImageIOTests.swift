import Testing
@testable import ImageIO

@Test func moduleLinks() { _ = ImageIO.self }
