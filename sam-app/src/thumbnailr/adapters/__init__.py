"""Adapters: the ports implemented over AWS services. Each takes its client and resource name."""
