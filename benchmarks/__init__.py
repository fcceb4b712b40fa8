"""Speed benchmarks of jaxgen's real train steps (not tests): `python -m benchmarks.run`."""
