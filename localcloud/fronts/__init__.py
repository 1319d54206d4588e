"""The fronts the performance notebook compares with API Gateway: an ALB, and a plain server (EC2 stand-in)."""
