"""The kl_ablation study: run.py and the analyses only it needs."""
