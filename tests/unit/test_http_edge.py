"""The API functions' edge (thumbnailr.handlers.http): each error's status and JSON answer."""

from __future__ import annotations

import inspect
import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from thumbnailr import model
from thumbnailr.handlers.http import STATUSES, api
from thumbnailr.model import DomainError, InvalidRequest, NotFound, NotReady, QuotaExceeded, Unauthorized


def answer_to(error: Exception) -> tuple[int, dict]:
    """What an API function answers when its body raises ``error``."""

    @api
    def handler(event: dict, context: object) -> dict:
        raise error

    response = handler({}, None)
    assert response["headers"] == {"Content-Type": "application/json"} and response["isBase64Encoded"] is False
    return response["statusCode"], json.loads(response["body"])


@pytest.mark.parametrize(
    ("error", "status"),
    [(InvalidRequest, 400), (Unauthorized, 401), (NotFound, 404), (NotReady, 409), (QuotaExceeded, 429)],
)
def test_each_domain_error_is_its_status_with_its_message(error: type[DomainError], status: int) -> None:
    assert STATUSES[error] == status
    assert answer_to(error("what went wrong")) == (status, {"message": "what went wrong"})


def test_every_domain_error_of_the_core_has_a_status() -> None:
    errors = {cls for _, cls in inspect.getmembers(model, inspect.isclass)
              if issubclass(cls, DomainError) and cls is not DomainError}
    assert errors == set(STATUSES)


def test_a_subclass_of_a_mapped_error_takes_its_status() -> None:
    class PhotoGone(NotFound):
        pass

    assert answer_to(PhotoGone("photo not found")) == (404, {"message": "photo not found"})


def test_a_domain_error_missing_from_the_table_is_a_500_not_a_200_nor_its_message() -> None:
    class Unmapped(DomainError):
        pass

    assert answer_to(Unmapped("internal detail")) == (500, {"message": "internal error"})
    assert answer_to(DomainError("internal detail")) == (500, {"message": "internal error"})


@pytest.mark.parametrize(
    "error",
    [ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutItem"),
     EndpointConnectionError(endpoint_url="http://127.0.0.1:1")],
)
def test_an_aws_fault_is_a_503_to_retry(error: Exception) -> None:
    assert answer_to(error) == (503, {"message": "the service is temporarily unavailable, please retry"})


def test_a_bug_is_a_500_without_its_details() -> None:
    assert answer_to(KeyError("secret")) == (500, {"message": "internal error"})
