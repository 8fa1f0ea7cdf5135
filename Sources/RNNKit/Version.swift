/// RNNKit's release, in one place.
///
/// `CHANGELOG.md`'s latest released version and `CITATION.cff`'s `version` equal
/// ``RNNKitRelease/version`` (`scripts/check-version.sh`, run by `make test`). The Keras files
/// RNNKit writes record it in their `metadata.json`, the safetensors files of `train-blas` in their
/// metadata, and `train-blas --version` prints it.
///
/// (Not named `RNNKitVersion`: the symbol-graph extractor drops public symbols named after the
/// module followed by `Version`, as it does the version constants Apple's tools generate.)
public enum RNNKitRelease {
    /// The version as `major.minor.patch` (semantic versioning).
    public static let version = "0.2.0"
}
