#!/usr/bin/env bash
# Fills data/mnist with the four MNIST IDX files (gzipped): from ../shared/mnist when it exists
# (or $MNIST_SOURCE), otherwise from a public mirror. Every file is verified by the SHA-256 of its
# uncompressed bytes (data/mnist.sha256), which holds for any faithful copy however it was compressed.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=data/mnist
sums=data/mnist.sha256
source_dir=${MNIST_SOURCE:-../shared/mnist}
mirrors=(
  "https://ossci-datasets.s3.amazonaws.com/mnist"
  "https://storage.googleapis.com/cvdf-datasets/mnist"
)
mkdir -p "$dest"

verify() { # file.gz name -> 0 when the uncompressed bytes match the checksum
  local expected actual
  expected=$(awk -v n="$2" '$2 == n { print $1 }' "$sums")
  [ -n "$expected" ] || { echo "error: no checksum for $2 in $sums" >&2; return 1; }
  actual=$(gzip -dc "$1" 2>/dev/null | sha256sum | cut -d' ' -f1) || return 1
  [ "$actual" = "$expected" ]
}

for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  target="$dest/$name.gz"
  if [ -f "$target" ] && verify "$target" "$name"; then
    echo "ok       $target"
    continue
  fi
  partial="$target.partial"
  rm -f "$partial"
  if [ -f "$source_dir/$name.gz" ]; then
    cp "$source_dir/$name.gz" "$partial"
    from="$source_dir"
  else
    from=""
    for mirror in "${mirrors[@]}"; do
      if curl -fsSL --retry 2 --connect-timeout 15 -o "$partial" "$mirror/$name.gz"; then from="$mirror"; break; fi
    done
    [ -n "$from" ] || { rm -f "$partial"; echo "error: could not download $name.gz from any mirror (${mirrors[*]})" >&2; exit 1; }
  fi
  if ! verify "$partial" "$name"; then
    rm -f "$partial"
    echo "error: $name.gz from $from does not match its SHA-256 in $sums" >&2
    exit 1
  fi
  mv "$partial" "$target"
  echo "verified $target (from $from)"
done
