"""Benchmarks of the mesh, run as `python -m bench.<name>`; results go to BENCHMARKS.md.

Every figure is a ratio between variants measured side by side in one run (these machines are
shared and noisy); absolute times count only on a GPU. See bench/README.md.
"""
