"""Tests of pcpeft.peft: the methods, their official layouts and the PEFT wrapper."""
