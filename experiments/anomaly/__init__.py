"""The anomaly study: run.py and the analyses only it needs."""
