#!/usr/bin/env bash
# Train on N GPUs of this machine: every rank runs the same ifforge command.
#   launchers/accelerate/launch.sh 8 stages=[build,train] objective=dpo_sft model=qwen1.5-7b-chat objective.deepspeed=zero2
# The Hydra run directory is fixed here, once: each rank would otherwise resolve ${now:...} to its own folder.
# Set LAUNCHER=torchrun to use torchrun instead of accelerate (same result).
set -euo pipefail
if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
  echo "usage: $0 NUM_GPUS [ifforge overrides...]" >&2
  exit 2
fi
gpus=$1
shift
run_dir=${IFFORGE_RUN_DIR:-outputs/$(date +%Y-%m-%d)/$(date +%H-%M-%S)}
here=$(cd "$(dirname "$0")" && pwd)
if [[ ${LAUNCHER:-accelerate} == torchrun ]]; then
  exec torchrun --standalone --nproc_per_node "$gpus" -m ifforge "hydra.run.dir=$run_dir" "$@"
fi
exec accelerate launch --config_file "$here/ddp.yaml" --num_processes "$gpus" -m ifforge "hydra.run.dir=$run_dir" "$@"
