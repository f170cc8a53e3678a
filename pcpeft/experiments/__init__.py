"""Experiments at scale: sweeps of ordinary runs on Ray Tune (:mod:`.sweep`), and the paper table with means,
intervals and paired tests over seeds (:mod:`.table`)."""
