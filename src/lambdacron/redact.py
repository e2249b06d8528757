"""Keep credentials out of job files and logs.

A run inherits the runner's environment (a command may need the function's AWS
credentials), so a job that prints its environment would copy them into ``last_result`` in
the job file. Every value of a sensitive-looking variable, the runner's or the job's own
``env``, is replaced by ``[redacted]`` in what is recorded.

Output is capped, so what is recorded is a window of a longer stream. Redacting the window
after the cut misses a secret the cut went through, so a process's output is redacted as a
stream, before anything is cut (:class:`StreamRedactor`); text that may already be a window
goes through :func:`redact_window`, which also removes a secret's fragment at either edge.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import AnyStr

SENSITIVE_NAME = re.compile(
    r"SECRET|TOKEN|PASSW|CREDENTIAL|PRIVATE|API_?KEY|ACCESS_KEY|SESSION|SIGNATURE", re.IGNORECASE
)
#: Shorter values would redact ordinary words; real credentials are longer.
MIN_SECRET_LENGTH = 8
#: A secret's fragment at least this long at the edge of a window is redacted; shorter ones
#: would redact ordinary characters, and three characters of a credential give nothing away.
MIN_FRAGMENT = 4
MARK = "[redacted]"
_MARK_BYTES = MARK.encode()


def secrets_in(*environments: Mapping[str, str]) -> tuple[str, ...]:
    """The values to redact, each as it is and as JSON writes it inside a string."""
    values = {
        form
        for env in environments
        for name, value in env.items()
        if SENSITIVE_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH
        for form in _forms(value)
    }
    return tuple(sorted(values, key=len, reverse=True))


def _forms(value: str) -> set[str]:
    """``value``, and its forms inside a JSON string: a Lambda's result is JSON, so a target
    that echoes a secret returns it encoded (a quote, ``\\u00e4``, a slash as ``\\/``)."""
    forms = {value}
    for ascii_only in (True, False):
        inner = json.dumps(value, ensure_ascii=ascii_only)[1:-1]
        forms |= {inner, inner.replace("/", "\\/")}
    return forms


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint spans; touching ones become one, so one mark stands for a run."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _occurrences(text: AnyStr, secrets: Iterable[AnyStr]) -> list[tuple[int, int]]:
    """Every occurrence of every secret, overlapping ones included.

    Replacing non-overlapping matches one after the other would leave the tail of an
    overlapping occurrence (``aaaaaaaa`` in ``aaaaaaaaaaaa``) in the text.
    """
    spans = []
    for secret in secrets:
        start = text.find(secret)
        while start >= 0:
            spans.append((start, start + len(secret)))
            start = text.find(secret, start + 1)
    return spans


def _replace(text: AnyStr, spans: Sequence[tuple[int, int]], mark: AnyStr) -> AnyStr:
    parts = []
    position = 0
    for start, end in spans:
        parts += [text[position:start], mark]
        position = end
    parts.append(text[position:])
    return text[:0].join(parts)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of every secret replaced by the mark."""
    secrets = [s for s in secrets if s]
    spans = _merge(_occurrences(text, secrets))
    return _replace(text, spans, MARK) if spans else text


def _edge_spans(text: str, secret: str, minimum: int) -> list[tuple[int, int]]:
    """A fragment of ``secret`` at the start or the end of ``text``, as a cut leaves it."""
    if len(text) < minimum:
        return []
    if text in secret:  # the window lies inside one occurrence
        return [(0, len(text))]
    spans = []
    # The start of the window is the end of the secret: some secret[p:] begins the text.
    head = text[:minimum]
    p = secret.find(head, 1)
    while p >= 0:
        if text.startswith(secret[p:]):
            spans.append((0, len(secret) - p))
            break  # the smallest p is the longest fragment
        p = secret.find(head, p + 1)
    # The end of the window is the start of the secret: some secret[:q] ends the text.
    tail_ = text[-minimum:]
    q = secret.rfind(tail_, 0, len(secret) - 1)
    while q >= 0:
        length = q + minimum
        if text.endswith(secret[:length]):
            spans.append((len(text) - length, len(text)))
            break  # the largest q is the longest fragment
        q = secret.rfind(tail_, 0, q + minimum - 1)
    return spans


def redact_window(text: str, secrets: Iterable[str], minimum: int = MIN_FRAGMENT) -> str:
    """Like :func:`redact`, for text that may have been cut out of a longer stream.

    A secret the cut went through leaves a fragment at the edge; any fragment of at least
    ``minimum`` characters there is redacted too.
    """
    secrets = [s for s in secrets if s]
    spans = _occurrences(text, secrets)
    for secret in secrets:
        spans += _edge_spans(text, secret, minimum)
    merged = _merge(spans)
    return _replace(text, merged, MARK) if merged else text


class StreamRedactor:
    """Redacts a byte stream fed in chunks, exactly as if it were redacted whole.

    A secret split between chunks is caught: the last ``len(longest secret) - 1`` bytes wait
    for the next chunk, since an occurrence that may continue past the chunk starts there.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        self._secrets = tuple({_to_bytes(s) for s in secrets if s})
        self._hold = max((len(s) for s in self._secrets), default=1) - 1
        self._pending = b""
        #: How much of ``_pending`` an occurrence that started in emitted bytes covers.
        self._carry = 0
        #: Whether the last emitted byte was redacted: a run that goes on gets no new mark.
        self._open = False

    def feed(self, chunk: bytes) -> bytes:
        if not self._secrets:
            return chunk
        buffer = self._pending + chunk
        return self._emit(buffer, max(0, len(buffer) - self._hold))

    def finish(self) -> bytes:
        """The held-back rest; the stream has ended."""
        if not self._secrets:
            return b""
        return self._emit(self._pending, len(self._pending))

    def _emit(self, buffer: bytes, split: int) -> bytes:
        if split == 0:
            self._pending = buffer
            return b""
        found = _occurrences(buffer, self._secrets)
        if self._carry:
            found.append((0, self._carry))
        out = bytearray()
        position = 0
        carry = 0
        is_open = False
        for start, end in _merge(found):
            if start >= split:
                break
            out += buffer[position:start]
            if not (start == 0 and self._open):
                out += _MARK_BYTES
            position = min(end, split)
            carry = max(0, end - split)
            is_open = end >= split
        out += buffer[position:split]
        self._pending = buffer[split:]
        self._carry = carry
        self._open = is_open
        return bytes(out)


def _to_bytes(secret: str) -> bytes:
    # An environment value that was not valid UTF-8 reaches the child as its original bytes.
    try:
        return secret.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return secret.encode("utf-8", "surrogatepass")


def tail(text: str, limit: int) -> str:
    """The last ``limit`` bytes of ``text`` in UTF-8, cut at a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[-limit:].decode("utf-8", errors="ignore")
