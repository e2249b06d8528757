"""Redaction holds whatever the output's length, the secrets' lengths and where the cut falls.

The property, stated once: the recorded output holds no substring of a secret that is
``MIN_FRAGMENT`` (4) characters or longer. Streams are built from a filler alphabet that
shares no character with the secrets or the mark, so any such substring is a leak.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lambdacron.actions.base import OUTPUT_LIMIT
from lambdacron.actions.process import _Tail
from lambdacron.redact import MIN_FRAGMENT, StreamRedactor, redact, redact_window, tail

SECRET_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/+"
FILLER_ALPHABET = "xyz .,\n"

secret_texts = st.text(SECRET_ALPHABET, min_size=8, max_size=3000)


def leaks(output: str, secrets: list[str]) -> list[str]:
    grams = {s[i : i + MIN_FRAGMENT] for s in secrets for i in range(len(s) - MIN_FRAGMENT + 1)}
    return [
        output[i : i + MIN_FRAGMENT]
        for i in range(len(output) - MIN_FRAGMENT + 1)
        if output[i : i + MIN_FRAGMENT] in grams
    ]


@st.composite
def streams(draw: st.DrawFn) -> tuple[str, list[str]]:
    """Filler with whole secrets at arbitrary places, often more than the limit in all."""
    secrets = draw(st.lists(secret_texts, min_size=1, max_size=3))
    pieces = draw(
        st.lists(
            st.one_of(
                st.sampled_from(secrets),
                st.text(FILLER_ALPHABET, max_size=50),
                st.integers(0, 6000).map(lambda n: "x" * n),
            ),
            max_size=40,
        )
    )
    return "".join(pieces), secrets


def chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@settings(max_examples=150, deadline=None)
@given(streams(), st.lists(st.integers(0, 20000), max_size=12))
def test_a_stream_redacted_in_chunks_then_cut_keeps_no_fragment(
    stream: tuple[str, list[str]], cuts: list[int]
) -> None:
    text, secrets = stream
    kept = _Tail(OUTPUT_LIMIT, secrets)
    for chunk in chunked(text.encode(), cuts):
        kept.feed(chunk)
    output = kept.text()
    assert len(output.encode()) <= OUTPUT_LIMIT
    assert leaks(output, secrets) == []
    # Exactly the last 4 KiB of the stream as a whole redaction would have it.
    assert output == tail(redact(text, secrets), OUTPUT_LIMIT)


@settings(max_examples=150, deadline=None)
@given(
    st.text("xy\u00e9", max_size=300),
    st.lists(st.text("xy\u00e9", min_size=1, max_size=12), min_size=1, max_size=3),
    st.lists(st.integers(0, 400), max_size=8),
)
def test_redacting_in_chunks_is_redacting_the_whole(
    text: str, secrets: list[str], cuts: list[int]
) -> None:
    # A tiny alphabet: overlapping and adjacent occurrences, and secrets inside secrets.
    redactor = StreamRedactor(secrets)
    parts = [redactor.feed(chunk) for chunk in chunked(text.encode(), cuts)]
    streamed = b"".join([*parts, redactor.finish()]).decode()
    assert streamed == redact(text, secrets)
    assert not any(secret in streamed for secret in secrets)


@settings(max_examples=200, deadline=None)
@given(streams(), st.integers(0, 30000), st.integers(0, 30000))
def test_a_window_cut_out_of_a_stream_keeps_no_fragment(
    stream: tuple[str, list[str]], start: int, length: int
) -> None:
    # What the tick does with an action's output, which may be any window of the stream.
    text, secrets = stream
    window = text[start : start + length]
    assert leaks(tail(redact_window(window, secrets), OUTPUT_LIMIT), secrets) == []


def test_the_reported_cases() -> None:
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    private = "".join(SECRET_ALPHABET[i * 7 % len(SECRET_ALPHABET)] for i in range(1700))
    for text, secret in ((key * 200, key), (private + "x" * 3600, private)):
        kept = _Tail(OUTPUT_LIMIT, [secret])
        kept.feed(text.encode())
        output = kept.text()
        assert leaks(output, [secret]) == [] and "[redacted]" in output


def test_overlapping_occurrences_leave_nothing() -> None:
    assert redact("a" * 12, ["a" * 8]) == "[redacted]"
