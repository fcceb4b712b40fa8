"""The mnist_vae_study study: run.py and the analyses only it needs."""
