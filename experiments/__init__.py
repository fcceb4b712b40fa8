"""Studies: each trains several runs and writes a report (see experiments/common.py)."""
