import RNNKit
import XCTest

/// Checks every gradient `computeGradients` left in `model`'s parameters (for the `loss` just
/// evaluated) against the library's central differences of `loss` with step `h`.
func assertGradientsMatchCentralDifferences(
    _ model: Sequential<Double>, loss: () throws -> Double, h: Double = 1e-6,
    accuracy: Double, file: StaticString = #filePath, line: UInt = #line
) rethrows {
    let analytic = model.parameters.map(\.gradient.array)
    for (parameter, gradient) in zip(model.parameters, analytic) {
        let numeric = try parameter.centralDifferences(of: loss, step: h)
        for i in 0..<parameter.count {
            XCTAssertEqual(gradient[i], numeric[i], accuracy: accuracy, "\(parameter.name)[\(i)]", file: file, line: line)
        }
    }
}
