"""Codecs of AWS API protocols (query, rest-json), driven by botocore's service models."""
