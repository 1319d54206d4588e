"""The AWS endpoint: moto in its own process, and the control endpoint of a running local cloud."""
