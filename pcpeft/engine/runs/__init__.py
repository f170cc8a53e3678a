"""Run folders: their names and locks, their atomic training state, and a finished run turned back into a model."""
