"""One module per Lambda function: each turns its event into one call of the core."""
