"""Tests of pcpeft.experiments: sweeps, tables, the modality comparison."""
