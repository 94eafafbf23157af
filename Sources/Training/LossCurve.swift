import Foundation

/// The loss curve of a run as an SVG document: the smoothed loss against the step as a
/// polyline, the loss axis in log scale (decades labeled, or the ends of the range when it
/// spans less than a decade), step ticks, axis labels and a title.
public struct LossCurve: Sendable {
    /// (step, loss) points, steps increasing; non-positive and non-finite losses are left out.
    public var points: [(step: Int, loss: Double)]
    public var title: String
    public var width = 640.0, height = 400.0

    public init(smoothedLosses: [Double], title: String = "training loss (smoothed)") {
        points = smoothedLosses.enumerated().compactMap { i, v in v > 0 && v.isFinite ? (i + 1, v) : nil }
        self.title = title
    }

    /// The SVG text.
    public var svg: String {
        let (left, right, top, bottom) = (70.0, 20.0, 40.0, 50.0)
        let plotW = width - left - right, plotH = height - top - bottom
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(f(width / 2))" y="22" text-anchor="middle" font-size="14">\(escape(title))</text>

            """
        let lastStep = points.last?.step ?? 1
        let firstStep = points.first?.step ?? 0
        let logs = points.map { Foundation.log10($0.loss) }
        var (lo, hi) = (logs.min() ?? -1, logs.max() ?? 0)
        if hi - lo < 1e-9 { (lo, hi) = (lo - 0.5, hi + 0.5) }
        let pad = (hi - lo) * 0.05
        (lo, hi) = (lo - pad, hi + pad)
        func x(_ step: Int) -> Double {
            left + (lastStep == firstStep ? plotW / 2 : Double(step - firstStep) / Double(lastStep - firstStep) * plotW)
        }
        func y(_ logLoss: Double) -> Double { top + (hi - logLoss) / (hi - lo) * plotH }
        // Axes.
        out += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotH))\" stroke=\"black\"/>\n"
        out += "<line x1=\"\(f(left))\" y1=\"\(f(top + plotH))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\" stroke=\"black\"/>\n"
        // Loss ticks: every power of ten in range, with 2x and 5x when there are few.
        var ticks: [Double] = []
        let decades = Int(Foundation.floor(lo))...Int(Foundation.ceil(hi))
        for d in decades {
            for m in (decades.count <= 3 ? [1.0, 2.0, 5.0] : [1.0]) {
                let v = Foundation.log10(m) + Double(d)
                if v >= lo && v <= hi { ticks.append(v) }
            }
        }
        if ticks.count < 2 { ticks = [lo + pad, hi - pad] }
        for t in ticks {
            let value = Foundation.pow(10, t)
            out += "<line x1=\"\(f(left - 5))\" y1=\"\(f(y(t)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y(t)))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(y(t) + 4))\" text-anchor=\"end\">\(String(format: "%.3g", value))</text>\n"
        }
        // Step ticks: about five round numbers.
        let span = Swift.max(lastStep - firstStep, 1)
        let rough = Double(span) / 5
        let magnitude = Foundation.pow(10, Foundation.floor(Foundation.log10(Swift.max(rough, 1))))
        let stepTick = Swift.max(1, Int(([1.0, 2.0, 5.0, 10.0].first { $0 * magnitude >= rough } ?? 10) * magnitude))
        var s = (firstStep + stepTick - 1) / stepTick * stepTick
        while s <= lastStep {
            out += "<line x1=\"\(f(x(s)))\" y1=\"\(f(top + plotH))\" x2=\"\(f(x(s)))\" y2=\"\(f(top + plotH + 5))\" stroke=\"black\"/>\n"
            out += "<text x=\"\(f(x(s)))\" y=\"\(f(top + plotH + 18))\" text-anchor=\"middle\">\(s)</text>\n"
            s += stepTick
        }
        out += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 10))\" text-anchor=\"middle\">step</text>\n"
        out += "<text x=\"16\" y=\"\(f(top + plotH / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 16 \(f(top + plotH / 2)))\">loss (log scale)</text>\n"
        // The curve, thinned to at most ~2000 points.
        let every = Swift.max(1, points.count / 2000)
        let shown = points.enumerated().filter { $0.offset % every == 0 || $0.offset == points.count - 1 }
        let polyline = shown.map { "\(f(x($0.element.step))),\(f(y(logs[$0.offset])))" }.joined(separator: " ")
        out += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"\(polyline)\"/>\n"
        out += "</svg>\n"
        return out
    }

    /// Writes the SVG to `path` atomically.
    public func write(to path: String) throws {
        try writeAtomically(Data(svg.utf8), to: path)
    }

    private func f(_ v: Double) -> String { String(format: "%.1f", v) }
    private func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
