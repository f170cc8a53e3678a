"""Tests of pcpeft.datasets: the readers, data sets and transforms."""
