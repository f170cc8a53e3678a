"""Independent restatements of the official forwards, written from the published facts (never importing the
pcpeft module they check)."""
