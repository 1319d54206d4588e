"""The settler: ends what was left in between. Two triggers:

* the schedule (an EventBridge rule): the sweep fails thumbnails and rejects photos still pending past the
  deadline, and gives back any refund a crash left due;
* Lambda's on-failure destination of the worker and of the upload check: an event Lambda gave up on (every
  attempt crashed, timed out or raised) ends its thumbnail failed or its photo rejected at once, with why.
"""

import json
from datetime import timedelta
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger

from thumbnailr import bootstrap
from thumbnailr.model import now_utc, photo_id_from_key
from thumbnailr.processing import CreateCommand, reject_photo, settle
from thumbnailr.services import fail_thumbnail

logger = Logger()


def _given_up(record: dict) -> list[str]:
    """An asynchronous invocation record (``requestContext.condition``: RetriesExhausted, EventAgeExceeded)."""
    context = record.get("requestContext") or {}
    error = (record.get("responsePayload") or {}) if isinstance(record.get("responsePayload"), dict) else {}
    why = f"{context.get('condition', 'gave up')} after {context.get('approximateInvokeCount', '?')} attempts"
    if error.get("errorType"):
        why += f": {error['errorType']}"
    outcomes = []
    if error.get("errorType") == "IdempotencyAlreadyInProgressError":
        # a duplicate delivery, refused while another one made the thumbnail: that one settles it (or the sweep)
        return ["ignored: a duplicate of a delivery in progress"]
    for item in (record.get("requestPayload") or {}).get("Records") or []:
        if "Sns" in item:  # the worker's create command
            command = CreateCommand.parse(json.loads(item["Sns"]["Message"]))
            thumbnail = bootstrap.thumbnails().get(command.thumbnail_id)
            if thumbnail is None:
                outcomes.append("ignored: unknown thumbnail")
                continue
            outcome = fail_thumbnail(bootstrap.thumbnails(), thumbnail, f"the worker gave up: {why}")
            if outcome.startswith("failed"):
                bootstrap.thumbnails_store().delete(thumbnail.object_key)  # a failed thumbnail has no object
            outcomes.append(outcome)
        elif "s3" in item:  # the upload check
            photo_id = photo_id_from_key(unquote_plus(item["s3"]["object"]["key"]))
            if photo_id is None:
                continue
            rejected = reject_photo(photo_id, f"the photo could not be checked in time ({why})",
                                    photos=bootstrap.photos(), store=bootstrap.photos_store())
            outcomes.append("rejected" if rejected else "ignored: already settled")
    return outcomes


@logger.inject_lambda_context
def lambda_handler(event: dict, context: object) -> dict:
    if "requestPayload" in event:
        outcomes = _given_up(event)
        logger.info("given-up event settled", outcomes=outcomes)
        return {"outcomes": outcomes}
    before = (now_utc() - timedelta(seconds=bootstrap.pending_deadline_s())).isoformat()
    counts = settle(thumbnails=bootstrap.thumbnails(), photos=bootstrap.photos(), photos_store=bootstrap.photos_store(),
                    thumbnails_store=bootstrap.thumbnails_store(), before=before)
    logger.info("swept", **counts)
    return counts
