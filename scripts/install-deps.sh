#!/usr/bin/env bash
# Installs the C libraries RNNKit links (OpenBLAS, LAPACKE, zlib; Open MPI for RNNKitMPI and HDF5
# for RNNKitKeras, both used by the trainer) when pkg-config (or, for mpirun, the PATH) cannot find them,
# and Debian's English word list (wamerican), which the character-level example learns from.
set -euo pipefail
missing=()
if ! command -v pkg-config >/dev/null 2>&1; then
  missing+=(pkg-config libopenblas-dev liblapacke-dev zlib1g-dev libopenmpi-dev openmpi-bin libhdf5-dev)
else
  pkg-config --exists openblas || missing+=(libopenblas-dev)
  pkg-config --exists lapacke || missing+=(liblapacke-dev)
  pkg-config --exists zlib || missing+=(zlib1g-dev)
  pkg-config --exists ompi-c || missing+=(libopenmpi-dev)
  pkg-config --exists hdf5 || missing+=(libhdf5-dev)
  command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin)
fi
[ -r /usr/share/dict/american-english ] || missing+=(wamerican)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "error: need root or sudo to install ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
