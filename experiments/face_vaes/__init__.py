"""The face_vaes study: run.py and the analyses only it needs."""
