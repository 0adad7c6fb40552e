"""Stage 6, Update: the trainable policy, strategies (local, DDP, DeepSpeed), DPO/PPO updates, checkpoints."""
