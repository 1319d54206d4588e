"""Lambda: execution environments (awslambdaric processes), the Runtime API, REPORT lines, logs, debugging."""
