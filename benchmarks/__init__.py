"""The benchmarks: scripts that measure fmnist's accuracy and speed, run as `python -m benchmarks.NAME` from the
repository root (see benchmarks/kit.py for what they share, and `make bench-smoke` for all of them in --quick mode)."""
