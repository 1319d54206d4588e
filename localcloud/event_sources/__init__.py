"""What invokes functions besides the API: async invocations, S3, SNS, DynamoDB streams, with AWS's retries."""
