"""The celeba_gans study: run.py and the analyses only it needs."""
