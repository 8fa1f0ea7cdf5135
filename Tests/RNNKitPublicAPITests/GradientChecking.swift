import RNNKit
import XCTest

/// Checks every gradient `computeGradients` left in `model`'s parameters (for the `loss` just
/// evaluated) against central differences of `loss` with step `h`, one weight at a time.
func assertGradientsMatchCentralDifferences(_ model: Sequential<Double>, loss: () throws -> Double, h: Double = 1e-6,
                                            accuracy: Double, file: StaticString = #filePath, line: UInt = #line) rethrows {
    let analytic = model.parameters.map(\.gradient.array)
    for (parameter, gradient) in zip(model.parameters, analytic) {
        for i in 0..<parameter.count {
            let saved = parameter.value.pointer[i]
            parameter.value.pointer[i] = saved + h
            let plus = try loss()
            parameter.value.pointer[i] = saved - h
            let minus = try loss()
            parameter.value.pointer[i] = saved
            XCTAssertEqual(gradient[i], (plus - minus) / (2 * h), accuracy: accuracy, "\(parameter.name)[\(i)]", file: file, line: line)
        }
    }
}
