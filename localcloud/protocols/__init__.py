"""AWS wire protocols, served: generic codecs driven by botocore's service models."""
