/// A floating-point type RNNKit computes in: `Float` for training, `Double` for tight
/// finite-difference gradient checks. The layers, losses, optimisers and models are generic over it.
///
/// It adds nothing of its own: it is the small protocols each part of the library needs, as
/// swift-numerics builds `Real` from `ElementaryFunctions` and friends. The engine's products and
/// activations are `EngineScalar` (Backends/Kernels); the losses' kernels `LossKernels` (Losses),
/// the optimisers' steps `OptimizerKernels` (Optimizers), the image gather `ImageKernels` (Data),
/// dropout and masking `SequenceKernels` (Layers), the stored dtype `SafeTensorsScalar` (IO).
/// Each holds its requirements and its conformances for `Float` and `Double` in its own file.
public protocol BLASScalar: EngineScalar, LossKernels, OptimizerKernels, ImageKernels, SequenceKernels, SafeTensorsScalar {}

/// `Float` as a `BLASScalar`: the scalar RNNKit trains in.
extension Float: BLASScalar {}
/// `Double` as a `BLASScalar`: the scalar of the finite-difference gradient checks.
extension Double: BLASScalar {}
