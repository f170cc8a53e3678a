"""Tests of pcpeft.ops: farthest point sampling, kNN and grouping, and their fast paths."""
