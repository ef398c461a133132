"""Synchronisation: one time base and one head-pose track per run, shared by every stage."""
