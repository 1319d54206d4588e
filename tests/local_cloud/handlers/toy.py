"""Toy handlers for the local Lambda runtime's tests (tests/local_cloud/test_lambda_runtime.py)."""

import os
import sys
import time

print("toy: module imported")  # init output: logged before START on a cold start


def echo(event, context):
    return event


def sleep(event, context):
    time.sleep(event.get("seconds", 1.0))
    return {"slept": event.get("seconds", 1.0), "pid": os.getpid()}


def boom(event, context):
    raise ValueError(event.get("message", "boom"))


def hog(event, context):
    """Allocate (and touch) memory 8 MiB at a time, up to event["mb"]."""
    chunks = []
    for _ in range(event.get("mb", 1024) // 8):
        chunks.append(bytearray(b"\x01") * (8 * 1024 * 1024))
        time.sleep(0.002)
    return {"allocated_mb": 8 * len(chunks)}


def print_lines(event, context):
    for i in range(event.get("n", 3)):
        print(f"line {i}")
    print("to stderr", file=sys.stderr)
    print("no newline at the end", end="")
    return {"printed": event.get("n", 3)}


def big_response(event, context):
    return "x" * event.get("size", 7 * 1024 * 1024)


def environment(event, context):
    return dict(os.environ)


def context_info(event, context):
    cc = context.client_context
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "client_context_custom": cc.custom if cc else None,
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "cwd": os.getcwd(),
    }


def exit_now(event, context):
    sys.stdout.flush()
    os._exit(event.get("code", 3))
