"""Throughput benchmarks for t2i, including an optional PyTorch reference for comparison."""
