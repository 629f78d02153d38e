"""Benchmarks: `python -m bench` runs them all and prints a table for each."""
