"""Operators the models call that PyTorch does not have: fused CPU kernels written in C, built at first use."""
