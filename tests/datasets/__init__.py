"""Tests of the dataset loaders on tiny copies of each on-disk layout (see tests/layouts.py)."""
