import XCTest
@testable import RNNKit

/// The user-facing kinds a file or a command line names: each recurrent layer's kind agrees with
/// its Keras names and its engine cell, and merge modes keep Keras's spellings.
final class LayerKindTests: XCTestCase {
    func testRecurrentCellKindsMatchTheLayers() {
        let layers: [(RecurrentCellKind, RecurrentLayer<Float>)] = [
            (.simpleRNN, SimpleRNN<Float>(units: 2)), (.lstm, LSTM<Float>(units: 2)), (.gru, GRU<Float>(units: 2)),
        ]
        for (kind, layer) in layers {
            XCTAssertEqual(kind.kerasClassName, layer.typeName)
            XCTAssertEqual(kind.rawValue, layer.nameStem)
            XCTAssertEqual(kind.gateCount, layer.cell.gates)
            XCTAssertEqual(RecurrentCellKind(kerasClassName: layer.typeName), kind)
        }
        XCTAssertEqual(RecurrentCellKind.allCases.map(\.rawValue), ["simple_rnn", "lstm", "gru"])
        XCTAssertNil(RecurrentCellKind(kerasClassName: "simple_rnn"))
        XCTAssertNil(RecurrentCellKind(kerasClassName: "ConvLSTM2D"))
    }

    func testMergeModesAreKerassSpellings() {
        XCTAssertEqual(MergeMode.allCases.map(\.rawValue), ["concat", "sum", "mul", "ave"])
        XCTAssertEqual(Bidirectional<Double>.MergeMode.average, MergeMode.average)
        XCTAssertNil(MergeMode(rawValue: "average"))
    }
}
