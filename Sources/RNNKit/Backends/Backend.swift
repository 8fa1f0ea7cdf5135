/// The sizes of one SimpleRNN pass over a batch.
public struct RNNDimensions: Equatable, Sendable {
    /// Sequences in the batch (`B`).
    public var batch: Int
    /// Time steps (`T`).
    public var steps: Int
    /// Input features per step (`D`).
    public var inputs: Int
    /// Units, the size of the state (`H`).
    public var units: Int

    public init(batch: Int, steps: Int, inputs: Int, units: Int) {
        precondition(batch > 0 && steps > 0 && inputs > 0 && units > 0,
                     "RNN dimensions must be positive: B \(batch), T \(steps), D \(inputs), H \(units)")
        self.batch = batch
        self.steps = steps
        self.inputs = inputs
        self.units = units
    }
}

/// The seam between the layers and the arithmetic: the layers own the weights and the buffers,
/// a backend fills them.
///
/// Layouts are fixed by this contract and are the same for every backend: row-major, sequences
/// time-major (`[T, B, F]`: each step's `B` rows are contiguous), weights in Keras's layout
/// (kernels `[inputs, units]`). Gradients are written, not accumulated. Pointers are borrowed for
/// the call only.
///
/// Two implementations: `BLASBackend`, the engine, and `NaiveBackend`, the plain-loop reference
/// it is tested and benchmarked against.
public protocol Backend: Sendable {
    /// A short name for reports (`blas`, `naive`).
    var name: String { get }

    /// SimpleRNN forward with `h_0 = 0`: `h_t = f(x_t · W + h_{t−1} · U + b)`.
    ///
    /// - Parameters:
    ///   - x: inputs `[T, B, D]`.
    ///   - kernel: `W [D, H]`; `recurrentKernel`: `U [H, H]`; `bias`: `b [H]`.
    ///   - activation: elementwise (`tanh`, `relu`, …).
    ///   - states: output, every `h_t` for t = 1…T: `[T, B, H]`.
    func simpleRNNForward<S: BLASScalar>(
        _ dims: RNNDimensions, activation: Activation,
        x: UnsafePointer<S>, kernel: UnsafePointer<S>, recurrentKernel: UnsafePointer<S>, bias: UnsafePointer<S>,
        states: UnsafeMutablePointer<S>)

    /// SimpleRNN backward through time.
    ///
    /// - Parameters:
    ///   - x, states: the forward pass's inputs `[T, B, D]` and states `[T, B, H]`.
    ///   - stateGradient: d loss / d h: `[T, B, H]` when `sequenceGradient`, else `[B, H]` for `h_T` only.
    ///   - kernelGradient `[D, H]`, recurrentKernelGradient `[H, H]`, biasGradient `[H]`: outputs.
    ///   - inputGradient: d loss / d x `[T, B, D]`, computed only when non-nil.
    ///   - workspace: scratch of at least `simpleRNNWorkspaceCount(dims)` elements.
    func simpleRNNBackward<S: BLASScalar>(
        _ dims: RNNDimensions, activation: Activation,
        x: UnsafePointer<S>, states: UnsafePointer<S>,
        kernel: UnsafePointer<S>, recurrentKernel: UnsafePointer<S>,
        stateGradient: UnsafePointer<S>, sequenceGradient: Bool,
        kernelGradient: UnsafeMutablePointer<S>, recurrentKernelGradient: UnsafeMutablePointer<S>,
        biasGradient: UnsafeMutablePointer<S>, inputGradient: UnsafeMutablePointer<S>?,
        workspace: UnsafeMutablePointer<S>)

    /// Dense forward, `y = f(x · V + c)` over `rows` rows.
    ///
    /// - Parameters: x `[rows, inputs]`, kernel `V [inputs, units]`, bias `c [units]`;
    ///   `preActivation` `[rows, units]` receives `x · V + c`, `output` `[rows, units]` receives `y`
    ///   (they may be the same buffer when `activation` is `linear`).
    func denseForward<S: BLASScalar>(
        rows: Int, inputs: Int, units: Int, activation: Activation,
        x: UnsafePointer<S>, kernel: UnsafePointer<S>, bias: UnsafePointer<S>,
        preActivation: UnsafeMutablePointer<S>, output: UnsafeMutablePointer<S>)

    /// Dense backward from the gradient of the pre-activation `dz [rows, units]`:
    /// `dV = xᵀ · dz`, `dc = Σ rows of dz`, and `dx = dz · Vᵀ` when `inputGradient` is non-nil.
    func denseBackward<S: BLASScalar>(
        rows: Int, inputs: Int, units: Int,
        x: UnsafePointer<S>, kernel: UnsafePointer<S>, preActivationGradient: UnsafePointer<S>,
        kernelGradient: UnsafeMutablePointer<S>, biasGradient: UnsafeMutablePointer<S>,
        inputGradient: UnsafeMutablePointer<S>?)
}

extension Backend {
    /// Scratch elements `simpleRNNBackward` needs: `dZ [T, B, H]` and the carried `g [B, H]`.
    public func simpleRNNWorkspaceCount(_ dims: RNNDimensions) -> Int {
        (dims.steps + 1) * dims.batch * dims.units
    }
}
