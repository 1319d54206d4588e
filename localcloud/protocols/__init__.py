"""Codecs for AWS wire protocols (query, REST-JSON), driven by botocore's service models."""
