/// The seam between the layers and the arithmetic: the layers own the weights and the buffers,
/// a backend fills them.
///
/// Layouts are fixed by this contract and are the same for every backend: row-major, sequences
/// time-major (`[T, B, F]`: each step's `B` rows are contiguous), weights in Keras's layout
/// (kernels `[inputs, units]`, gates concatenated in Keras's order). Gradients are written, not
/// accumulated. Pointers are borrowed for the call only.
///
/// Two implementations: `BLASBackend`, the engine, and `NaiveBackend`, the plain-loop reference
/// it is tested and benchmarked against. The recurrent calls name no cell: the `RecurrentCell`
/// says which elementwise step follows the GEMMs.
public protocol Backend: Sendable {
    /// A short name for reports (`blas`, `naive`).
    var name: String { get }

    /// Scratch scalars `recurrentForward` and `recurrentBackward` need for `cell` at `dims`.
    /// The caller owns the workspace and may reuse it between calls; its contents on entry do
    /// not matter.
    func recurrentWorkspaceCount(_ cell: RecurrentCell, _ dims: RNNDimensions) -> Int

    /// A recurrent layer's forward pass over a batch with zero initial state (`h_0 = 0`, `c_0 = 0`).
    ///
    /// Arguments (the backends call `dims` `d`):
    /// - `cell`: which cell, with its activations.
    /// - `dims`: the sizes: steps T, batch B, inputs D, units H.
    /// - `x`: inputs `[T, B, D]`.
    /// - `weights`: in Keras's layout for `cell`.
    /// - `mask`: `[T, B]`, 0 where a sample's step is masked (Keras's masking): there the state
    ///   (and LSTM's cell state) is carried over unchanged, so the tape's state at a masked step
    ///   is the state after the last unmasked one. Nil: every step counts.
    /// - `initialState`: `h_0` (and LSTM's `c_0`), `[B, H]` each; nil for zeros.
    /// - `tape`: receives every step's gates and states (see `RecurrentTape`).
    /// - `workspace`: at least `recurrentWorkspaceCount(cell, dims)` scalars.
    func recurrentForward<S: BLASScalar>(
        _ cell: RecurrentCell, _ dims: RNNDimensions, x: UnsafePointer<S>, weights: RecurrentWeights<S>,
        mask: UnsafePointer<UInt8>?, initialState: RecurrentState<S>?, tape: RecurrentTape<S>, workspace: UnsafeMutablePointer<S>)

    /// Backward through time for the last `recurrentForward` with the same arguments.
    ///
    /// Arguments (the backends call `dims` `d`):
    /// - `cell`: the forward pass's.
    /// - `dims`: the forward pass's sizes.
    /// - `x`: the forward pass's inputs.
    /// - `weights`: the forward pass's.
    /// - `tape`: the forward pass's, with every step's gates and states.
    /// - `stateGradient`: d loss / d h: `[T, B, H]` when `sequenceGradient`, else `[B, H]` for `h_T` only.
    /// - `gradients`: receive d loss / d each weight.
    /// - `inputGradient`: d loss / d x `[T, B, D]`, computed only when non-nil (zero at masked steps).
    /// - `mask`: the forward pass's: at a masked step the gradient of the state passes to the step
    ///   before unchanged, and no weight or input gradient arises.
    /// - `initialState`: the forward pass's.
    /// - `finalCellGradient`: LSTM: d loss / d c_T `[B, H]` from outside (when c_T starts another layer); nil for none.
    /// - `initialStateGradient`: receives d loss / d h_0 (and d c_0) when non-nil.
    /// - `sequenceGradient`: whether `stateGradient` covers every step or only the last.
    /// - `workspace`: at least `recurrentWorkspaceCount(cell, dims)` scalars.
    func recurrentBackward<S: BLASScalar>(
        _ cell: RecurrentCell, _ dims: RNNDimensions, x: UnsafePointer<S>, weights: RecurrentWeights<S>,
        mask: UnsafePointer<UInt8>?, initialState: RecurrentState<S>?, tape: RecurrentTape<S>, stateGradient: UnsafePointer<S>,
        sequenceGradient: Bool, finalCellGradient: UnsafePointer<S>?, gradients: RecurrentGradients<S>,
        inputGradient: UnsafeMutablePointer<S>?, initialStateGradient: RecurrentStateGradient<S>?, workspace: UnsafeMutablePointer<S>)

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
