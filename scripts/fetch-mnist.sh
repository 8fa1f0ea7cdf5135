#!/usr/bin/env bash
# Fills data/mnist with the four MNIST IDX files. Files already in data/mnist, raw or gzipped,
# are kept when they verify. Otherwise each is taken from $MNIST_SOURCE (default ../shared/mnist),
# raw or gzipped, or else downloaded from a public mirror. Every file is verified by the SHA-256
# of its uncompressed bytes (data/mnist.sha256), which holds for any faithful copy however it was
# compressed.
#
# Offline or behind a firewall: put the four files (from any MNIST copy; names like
# train-images-idx3-ubyte or train-images-idx3-ubyte.gz) in a folder and run
#   make data MNIST_SOURCE=/that/folder        (or copy them into data/mnist yourself)
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

uncompressed() { # file -> its bytes, gunzipped when gzip
  if [ "$(head -c 2 "$1" | od -An -tx1 | tr -d ' \n')" = "1f8b" ]; then gzip -dc "$1"; else cat "$1"; fi
}

verify() { # file name -> 0 when the (uncompressed) bytes match the checksum
  local expected actual
  expected=$(awk -v n="$2" '$2 == n { print $1 }' "$sums")
  [ -n "$expected" ] || { echo "error: no checksum for $2 in $sums" >&2; return 1; }
  actual=$(uncompressed "$1" 2>/dev/null | sha256sum | cut -d' ' -f1) || return 1
  [ "$actual" = "$expected" ]
}

for name in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  kept=""
  for present in "$dest/$name.gz" "$dest/$name"; do
    if [ -f "$present" ] && verify "$present" "$name"; then kept="$present"; break; fi
  done
  if [ -n "$kept" ]; then
    echo "ok       $kept"
    continue
  fi
  target="$dest/$name.gz"
  partial="$target.partial"
  rm -f "$partial"
  from=""
  for candidate in "$source_dir/$name.gz" "$source_dir/$name"; do
    if [ -f "$candidate" ]; then
      if [ "${candidate%.gz}" = "$candidate" ]; then target="$dest/$name"; partial="$target.partial"; fi
      cp "$candidate" "$partial"
      from="$source_dir"
      break
    fi
  done
  if [ -z "$from" ]; then
    for mirror in "${mirrors[@]}"; do
      if curl -fsSL --retry 1 --connect-timeout 10 -o "$partial" "$mirror/$name.gz" 2>/dev/null; then from="$mirror"; break; fi
    done
  fi
  if [ -z "$from" ]; then
    rm -f "$partial"
    cat >&2 <<MSG
error: $name is not in $dest, not in \$MNIST_SOURCE ($source_dir), and no mirror could be reached
       (${mirrors[*]}).
       To fill data/mnist by hand: get the four MNIST IDX files (raw or .gz) from any copy, then
         make data MNIST_SOURCE=/folder/with/the/files    or copy them into $dest
       They are verified against $sums either way.
MSG
    exit 1
  fi
  if ! verify "$partial" "$name"; then
    rm -f "$partial"
    echo "error: $name from $from does not match its SHA-256 in $sums (the uncompressed bytes are checked)" >&2
    exit 1
  fi
  mv "$partial" "$target"
  echo "verified $target (from $from)"
done
