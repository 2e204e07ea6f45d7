"""Reward models and embedders: device and dtype, Bradley-Terry loss, scoring, training (TRL on CPU, Unsloth on
CUDA), the fast embedding-head RM and cached sentence embeddings."""
