"""API Gateway (REST API, payload format 1.0): routing, proxy events and responses, the Cognito authorizer."""
