#!/usr/bin/env bash
# Shows the provider's OCR job on ONNX Runtime's CUDA execution provider next to the CPU, on a
# machine with an NVIDIA GPU. Run from the repository root after `npm ci` (which builds dist/):
#
#   scripts/gpu-check.sh [--jobs 20]
#
# Exit codes: 0 the OCR job ran on CUDA (figures printed); 2 no NVIDIA GPU or driver (nvidia-smi
# missing or failing); 3 the installed onnxruntime-node has no CUDA provider (the repository
# installs the CPU build: ONNXRUNTIME_NODE_INSTALL_CUDA=skip; the message says how to add CUDA);
# 4 CUDA is installed but could not run the job; 1 anything else (not built, bad arguments).
# UNC_GPU_CHECK_NVIDIA_SMI names another nvidia-smi (the tests point it at a stand-in).
set -uo pipefail

cd "$(dirname "$0")/.." || exit 1
smi="${UNC_GPU_CHECK_NVIDIA_SMI:-nvidia-smi}"

if ! command -v "$smi" >/dev/null 2>&1; then
  echo "gpu-check: CUDA NOT AVAILABLE: no NVIDIA driver here ($smi not found); nothing was run on a GPU."
  exit 2
fi
if ! gpus="$("$smi" --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1)" || [ -z "$gpus" ]; then
  echo "gpu-check: CUDA NOT AVAILABLE: $smi found no usable GPU: ${gpus:-no output}"
  exit 2
fi
echo "gpu-check: NVIDIA GPU(s): $gpus"

check="packages/miner/dist/bench/gpu-check.js"
if [ ! -f "$check" ]; then
  echo "gpu-check: $check is missing; build first (npm ci, or npx tsc -b)"
  exit 1
fi
node "$check" "$@"
