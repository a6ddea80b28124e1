"""The oversize rejection says which limit applies and why, in the documented units."""

from __future__ import annotations

import pytest

from contracts.errors import DecodeError, RejectReason
from gateway.ingest.decode import EntryDecoder


def test_an_oversize_body_names_the_batch_limit_and_the_envelope_allowance() -> None:
    """Before: ``message body of 300000 bytes exceeds 278528``, a number documented nowhere."""
    decoder = EntryDecoder(max_batch_bytes=256 * 1024)
    with pytest.raises(DecodeError) as caught:
        decoder.decode(None, b"x" * 300_000)
    assert caught.value.reason is RejectReason.OVERSIZE
    assert caught.value.detail == (
        "message body of 300000 bytes exceeds 278528 bytes, the most a body may have: "
        "the batch limit max_batch_bytes (262144 bytes = 256 KiB) plus 16 KiB for the event envelope; "
        "a larger body holds no entry that fits a batch"
    )
