"""Tests of pcpeft.engine: recipes, training, resuming, run folders."""
