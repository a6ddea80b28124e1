"""Raw NATS header blocks: well-formed ones read as nats-py reads them, malformed ones rejected."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nats.aio.client import Client

from contracts import DecodeError, RejectReason
from gateway.ingest import headers as headerblock
from gateway.ingest.headers import binary_attributes, header_dict, parse_header_block

NAME_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def block(headers: dict[str, str]) -> bytes:
    """A header block as nats-py's publish writes it."""
    return b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"


def test_a_well_formed_block_is_read_with_lowercase_names() -> None:
    raw = b"NATS/1.0\r\nContent-Type: application/json\r\nce-id:\t 1 \r\nCe-Source:/s\r\nx:\r\n\r\n"
    assert parse_header_block(raw) == {
        "content-type": "application/json",
        "ce-id": "1",
        "ce-source": "/s",
        "x": "",
    }
    assert parse_header_block(b"NATS/1.0\r\n\r\n") == {}


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"NATS/1.0 503\r\n\r\n", "malformed"),
        (b"NATS/1.0\r\nce-id: 1\r\n", "malformed"),
        (b"NATS/2.0\r\nce-id: 1\r\n\r\n", "malformed"),
        (b"", "malformed"),
        (b"NATS/1.0\r\nce-id 1\r\n\r\n", "no colon"),
        (b"NATS/1.0\r\nce-id: 1\r\n\r\nce-type: x\r\n\r\n", "no colon"),
        (b"NATS/1.0\r\n folded: x\r\n\r\n", "not a token"),
        (b"NATS/1.0\r\nce id: 1\r\n\r\n", "not a token"),
        (b"NATS/1.0\r\n: 1\r\n\r\n", "not a token"),
        (b"NATS/1.0\r\nce-\xc3\xa9: 1\r\n\r\n", "not a token"),
        (b"NATS/1.0\r\nce-id: \xff\r\n\r\n", "not UTF-8"),
        (b"NATS/1.0\r\nce-id: 1\r\nCE-ID: 2\r\n\r\n", "more than once"),
        (b"NATS/1.0\r\ncontent-type: a\r\nContent-Type: b\r\n\r\n", "more than once"),
    ],
)
def test_a_malformed_block_is_an_invalid_envelope(raw: bytes, detail: str) -> None:
    with pytest.raises(DecodeError) as info:
        parse_header_block(raw)
    assert info.value.reason is RejectReason.INVALID_ENVELOPE
    assert detail in info.value.detail


def test_other_headers_may_repeat_and_the_last_wins_as_in_nats_py() -> None:
    assert parse_header_block(b"NATS/1.0\r\nx-a: 1\r\nX-A: 2\r\n\r\n") == {"x-a": "2"}


def test_header_dict_reads_anything_for_diagnostics() -> None:
    assert header_dict(None) is None
    assert header_dict(b"NATS/1.0 503\r\n\r\n") is None
    assert header_dict(b"NATS/1.0\r\nCe-Id: \xff1\r\nno colon\r\nbad name: x\r\n\r\n") == {"Ce-Id": "\ufffd1"}


header_names = st.text(alphabet=NAME_CHARS, min_size=1, max_size=12)
header_values = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"), max_size=20
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(header_names, header_values, max_size=8))
def test_blocks_nats_py_writes_read_as_nats_py_reads_them(headers: dict[str, str]) -> None:
    raw = block(headers)
    theirs = Client._parse_header_lines(raw[len(b"NATS/1.0\r\n") :])
    lowered = [name.lower() for name in headers]
    used = {n for n in lowered if n == "content-type" or n.startswith("ce-")}
    if any(lowered.count(n) > 1 for n in used):
        with pytest.raises(DecodeError):
            parse_header_block(raw)
        return
    ours = parse_header_block(raw)
    assert set(ours) == set(lowered)
    # What the decoder reads (content-type, ce-*) is exactly what nats-py gives it.
    assert {n: v for n, v in ours.items() if n in used} == {
        n.lower(): v for n, v in theirs.items() if n.lower() in used
    }


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_never_crash(tail: bytes) -> None:
    reasons = set()
    for raw in (tail, b"NATS/1.0\r\n" + tail, b"NATS/1.0\r\n" + tail + b"\r\n\r\n"):
        try:
            parse_header_block(raw)
        except DecodeError as exc:
            reasons.add(exc.reason)
        header_dict(raw)
    assert reasons <= {RejectReason.INVALID_ENVELOPE}


def _strict_attributes(raw: bytes) -> dict[str, str] | None:
    """What the strict reader and the binary-mode decoder make of a block (None: it is rejected)."""
    try:
        lowered = parse_header_block(raw)
    except DecodeError:
        return None
    attrs = {name[3:]: value for name, value in lowered.items() if name.startswith("ce-")}
    if "content-type" in lowered:
        attrs["datacontenttype"] = lowered["content-type"]
    return attrs


ce_names = st.sampled_from(
    ["ce-id", "CE-ID", "ce-source", "ce-type", "Ce-Time", "ce-", "ce-datacontenttype", "content-type"]
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.tuples(ce_names | header_names, header_values), max_size=8),
    st.sampled_from(
        [b""] * 4 + [b"x: 1\r\n", b"no colon\r\n", b"ce-id\r\n", b"\xff: 1\r\n", b"NATS/1.0\r\n"]
    ),
)
def test_binary_attributes_are_the_strict_readers_or_none(lines: list[tuple[str, str]], junk: bytes) -> None:
    raw = b"NATS/1.0\r\n" + b"".join(f"{k}: {v}\r\n".encode() for k, v in lines) + junk + b"\r\n"
    headerblock._NAMES.clear()  # a bounded cache: keep room for this example's names
    strict = _strict_attributes(raw)
    _strict_attributes(block(dict(lines)))  # the strict reader learns these names, as it would in a flood
    fast = binary_attributes(raw)
    if fast is not None:
        assert fast == strict  # same attributes, never ones the strict reader would refuse
        assert not any("%" in value for value in fast.values())  # percent-encoded: the strict path's


def test_binary_attributes_leave_doubt_to_the_strict_reader() -> None:
    plain = block({"content-type": "application/json", "ce-specversion": "1.0", "ce-id": "7"})
    headerblock._NAMES.clear()  # the names other tests read may have filled the bounded cache
    parse_header_block(plain)
    assert binary_attributes(plain) == {
        "datacontenttype": "application/json",
        "specversion": "1.0",
        "id": "7",
    }
    for raw in (
        plain.replace(b"ce-id: 7", b"ce-id: 7\r\nce-id: 8"),  # a CloudEvents header twice
        plain.replace(b"ce-id: 7", b"ce-id: caf%C3%A9"),  # percent-encoded
        plain.replace(b"ce-id: 7", b"ce-id"),  # a known name with no colon
        plain.replace(b"ce-id: 7", b"ce-id: 7\r\ncontent-type"),  # the same, after a good line
        plain.replace(b"ce-id", b"ce-never-seen-before"),  # a name the strict reader has not checked
        plain.replace(b"NATS/1.0", b"NATS/1.0 503"),  # a status line
        plain[:-2],  # not ended
        plain.replace(b"7", b"\xff"),  # not UTF-8
    ):
        assert binary_attributes(raw) is None, raw
