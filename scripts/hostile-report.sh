#!/usr/bin/env bash
# Runs train-blas --load on every file hostile-files writes and prints, for each, the exit status,
# the wall time, the peak memory (GNU time) and the first line of the error: the figures the
# hostile-input section of the README speaks of. Uses the release build: make release first.
set -euo pipefail
bin=${BIN:-.build/release}
folder=$(mktemp -d)
trap 'rm -rf "$folder"' EXIT
"$bin/hostile-files" "$folder" >/dev/null
scripts/fetch-mnist.sh >/dev/null
printf '| case | exit | seconds | peak MB | message |\n|---|---:|---:|---:|---|\n'
while IFS= read -r line; do
  # (fields cut one by one: read would fold the empty flags field of a tab-separated line)
  name=$(cut -f1 <<<"$line"); file=$(cut -f2 <<<"$line"); flags=$(cut -f4 <<<"$line")
  # shellcheck disable=SC2086
  /usr/bin/time -f '%e %M' -o "$folder/time" "$bin/train-blas" --load "$folder/$file" --epochs 0 $flags \
    --output "$folder/out-$file" >/dev/null 2>"$folder/err" && status=0 || status=$?
  read -r seconds kilobytes < <(tail -1 "$folder/time")
  # The first line, and the first item of a list when the line ends with a colon.
  message=$( { grep -v "debug build" "$folder/err" || true; } | head -2 | tr '\n' ' ' | sed -e "s|$folder/||g" -e 's/|/\\|/g' -e 's/  */ /g' | cut -c1-220)
  printf '| %s | %s | %s | %d | %s |\n' "$name" "$status" "$seconds" $((kilobytes / 1000)) "${message:-(loaded)}"
done < "$folder/cases.tsv"
