"""Tests of the pcpeft command and the tools."""
