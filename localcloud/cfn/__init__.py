"""The CloudFormation engine: the SAM transform, parameters, conditions, intrinsics, names, provisioning, deletion."""
