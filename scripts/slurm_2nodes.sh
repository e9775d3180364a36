#!/bin/bash
# 2 nodes x 4 GPUs, DeepSpeed ZeRO-2 with the optimizer on the CPU. Lightning reads ranks and the master address
# from SLURM's environment; --ntasks-per-node must equal --trainer.devices.
#SBATCH --job-name=sentiment_pl
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=4
#SBATCH --gres=gpu:4
#SBATCH --cpus-per-task=8
#SBATCH --time=04:00:00
#SBATCH --signal=SIGTERM@120
set -euo pipefail
CKPT=runs/sentiment/version_0/checkpoints/last.ckpt
RESUME=()
if [ -e "$CKPT" ]; then RESUME=(--ckpt_path "$CKPT"); fi   # a requeued job continues where it stopped
srun python -m sentiment_pl fit --config configs/qlora_deepspeed.yaml \
    --trainer.devices 4 --trainer.num_nodes 2 "${RESUME[@]}"
