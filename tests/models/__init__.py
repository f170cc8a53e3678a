"""Tests of pcpeft.models: the backbones, their official layouts and parameter counts."""
