import Foundation

/// How the learning rate changes over training, per optimiser step, with Keras's schedules.
public enum LearningRateSchedule: Sendable, Equatable {
    /// The optimiser's own rate throughout.
    case constant
    /// Keras's `CosineDecay`: from the optimiser's rate `lr` down to `alpha · lr` along half a
    /// cosine over `steps` steps (then held): `lr · ((1 − α) · ½(1 + cos(π · min(t, steps) / steps)) + α)`.
    /// `steps` nil means "over the whole `fit`".
    case cosineDecay(steps: Int?, alpha: Double = 0)

    /// The rate at optimiser step `step` (from 0) of `totalSteps`, starting from `initial`.
    public func rate(initial: Double, step: Int, totalSteps: Int) -> Double {
        switch self {
        case .constant:
            return initial
        case .cosineDecay(let steps, let alpha):
            let span = Double(max(steps ?? totalSteps, 1))
            let progress = min(Double(step), span) / span
            return initial * ((1 - alpha) * 0.5 * (1 + cos(Double.pi * progress)) + alpha)
        }
    }
}
