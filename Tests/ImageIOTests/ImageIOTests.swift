import Testing
import ImageIO

@Test func moduleLinks() { _ = ImageIO.self }
