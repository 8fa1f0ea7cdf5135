#!/usr/bin/env bash
# Seeds the fuzz corpora of the Keras and checkpoint readers from the shared Keras fixtures
# (FIXTURES, default ../shared/fixtures) into .fuzz-seeds/<reader>/: the .keras files whole, the
# config.json inside each, the .weights.h5 files, and one checkpoint written by train-blas from
# the fixture keras_trained_model_a.keras (when MNIST and a built train-blas are there).
set -euo pipefail
fixtures=${FIXTURES:-../shared/fixtures}
seeds=.fuzz-seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{keras,config,hdf5,checkpoint}
if [ ! -d "$fixtures" ]; then
  echo "fuzz-seeds: no fixtures in $fixtures; the Keras and checkpoint targets start from empty corpora" >&2
  exit 0
fi
cp "$fixtures"/*.keras "$seeds/keras/"
cp "$fixtures"/*.weights.h5 "$seeds/hdf5/"
python3 - "$fixtures" "$seeds/config" <<'PY'
import pathlib, sys, zipfile
for path in sorted(pathlib.Path(sys.argv[1]).glob("*.keras")):
    with zipfile.ZipFile(path) as archive:
        (pathlib.Path(sys.argv[2]) / (path.stem + ".json")).write_bytes(archive.read("config.json"))
PY
scripts/fetch-mnist.sh >/dev/null 2>&1 || true
trainer=.build/release/train-blas
[ -x "$trainer" ] || trainer=.build/debug/train-blas
if [ -x "$trainer" ] && [ -f data/mnist/train-images-idx3-ubyte.gz -o -f data/mnist/train-images-idx3-ubyte ]; then
  run=$(mktemp -d)
  "$trainer" --load "$fixtures/keras_trained_model_a.keras" --epochs 1 --limit 256 --batch-size 32 \
    --checkpoint-every 1 --output "$run" >/dev/null
  cp "$run/checkpoint.safetensors" "$seeds/checkpoint/model-a.safetensors"
  "$trainer" --cell lstm --units 4 --epochs 1 --limit 256 --batch-size 32 --checkpoint-every 1 --output "$run/lstm" >/dev/null
  cp "$run/lstm/checkpoint.safetensors" "$seeds/checkpoint/lstm.safetensors"
  rm -rf "$run"
else
  echo "fuzz-seeds: no built train-blas or no MNIST; the checkpoint target starts from an empty corpus" >&2
fi
echo "fuzz-seeds: $(find "$seeds" -type f | wc -l) seeds in $seeds"
