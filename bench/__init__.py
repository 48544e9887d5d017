"""Benchmarks: each prints its figure and the peer it is compared with, measured in one run."""
