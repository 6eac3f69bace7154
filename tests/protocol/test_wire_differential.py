"""The agent's msgspec models (protocol.wire) and the backend's pydantic models agree.

Valid frames and envelopes are generated, then broken: wrong types, a bool for an int, floats,
missing fields, numbers out of range, odd timestamps, extra keys, nested junk, and changes to
the JSON text itself (duplicate keys, NaN, lone surrogates, bytes, a BOM, padding past the
size limit). Both parsers must accept with equal values, or both reject with a FrameError
(ValidationFailed for an envelope read from decoded JSON, as the API client reads it).
"""

from __future__ import annotations

import copy
import json
import math
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapi_agent.protocol import FrameError, ValidationFailed, envelope, frames, wire

SUBTYPES = ["incomingCall", "answeredCall", "endedCall", "missedCall"]
NEST = "\x00nest:"  # placeholders replaced in the JSON text: deeply nested arrays, and
DIGITS = "\x00digits:"  # numbers longer than Python converts (json.loads refuses them)

# -- valid data ----------------------------------------------------------------------------

offsets = st.one_of(
    st.none(),
    st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59),
                                      max_value=timedelta(hours=23, minutes=59))
              .map(lambda d: timedelta(minutes=d // timedelta(minutes=1)))),
)


@st.composite
def iso_times(draw: st.DrawFn) -> str:
    moment = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)))
    zone = draw(offsets)
    value = moment.replace(tzinfo=zone) if zone is not None else moment
    text = value.isoformat(
        sep=draw(st.sampled_from(["T", " "])),
        timespec=draw(st.sampled_from(["auto", "hours", "minutes", "seconds", "milliseconds",
                                       "microseconds"])),
    )
    return text.replace("+00:00", "Z") if draw(st.booleans()) else text


ODD_TIMES = [
    "2023-11-01", "2023-11-01T10", "20231101T102800", "2023-11-01T10:28:00z",
    "2023-11-01t10:28:00", "2023-11-01T10:28:00.1234567", "2023-11-01T10:28:00+24:00",
    "2023-11-01T10:28:00+23:59:59.999999", "2023-11-01T24:00:00", "2023-02-30T00:00:00",
    "0001-01-01T00:00:00+14:00", "0001-01-01T00:00:00-14:00", "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59+14:00", "0001-01-01T00:00:00", "9999-12-31T23:59:59.999999",
    "2023-W44-3", "2023-305", " 2023-11-01T10:28:00", "2023-11-01T10:28:00 ", "", "now",
    "2023-11-01T10:28:00+01", "2023-11-01T10:28:00+0100", "2023-11-01T10:28:00Z+01:00",
    "2023-11-01T10:28:00\ud800", "٢٠٢٣-١١-٠١",
]
times = st.one_of(iso_times(), st.sampled_from(ODD_TIMES))
ids = st.text(min_size=1, max_size=40)


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    sub_type = draw(st.sampled_from(SUBTYPES))
    payload: dict[str, Any] = {
        "created": draw(times),
        "callerId": draw(st.text(max_size=64)),
        "destinationId": draw(st.text(min_size=1, max_size=64)),
    }
    if draw(st.booleans()):
        payload["id"] = draw(st.one_of(st.none(), st.text(min_size=1, max_size=128)))
    if draw(st.booleans()):
        payload["huntGroup"] = draw(st.one_of(st.none(), st.booleans()))
    if draw(st.booleans()):  # ignored on incoming and missed calls, read on the others
        payload["answeredById"] = draw(st.one_of(st.none(), st.text(min_size=1, max_size=32)))
    return {
        "type": "telephony",
        "subType": sub_type,
        "products": draw(st.lists(st.sampled_from(["AgencyCloud", "ag", "x" * 64]) | ids,
                                  min_size=1, max_size=4)),
        "targets": {"negotiatorId": draw(st.lists(st.text(min_size=1, max_size=32),
                                                  min_size=1, max_size=4))},
        "payload": payload,
    }


@st.composite
def server_frames(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["welcome", "notification", "notification", "replayed",
                                 "heartbeat"]))
    if kind == "welcome":
        return {"type": kind, "connectionId": draw(ids), "negotiatorId": draw(ids),
                "epoch": draw(ids), "heartbeatMs": draw(st.integers(1, 2**40))}
    if kind == "notification":
        return {"type": kind, "seq": draw(st.integers(1, 2**70)), "sentAt": draw(times),
                "notification": draw(envelopes())}
    if kind == "replayed":
        return {"type": kind, "count": draw(st.integers(0, 10**6)),
                "complete": draw(st.booleans())}
    return {"type": kind}


# -- breaking it ---------------------------------------------------------------------------

JUNK: list[Any] = [
    None, True, False, 0, 1, -1, 2**31, 2**63, 2**64, -(2**63) - 1, 10**30, 10**4000,
    0.0, 1.0, -0.0, 1.5, 1e300, math.inf, -math.inf, math.nan, "", "x" * 33, "x" * 65,
    "x" * 129, "1", "true", "null", "\ud800", "a\udfff\ud800", "\x00", "é" * 64, "é" * 65,
    [], {}, [[]], {"a": {}}, ["AgencyCloud"], [1], [None], ["\ud800"], {"negotiatorId": []},
    {"negotiatorId": ["x" * 33]}, {"\ud800": 1}, "telephony", "incomingCall", "notification",
    "welcome", *ODD_TIMES, f"{NEST}10", f"{NEST}3000", f"{DIGITS}4300", f"{DIGITS}4301",
]
"""Values put in place of a field: wrong types, a bool for an int, floats, numbers out of
range, strings at and past their limits, lone surrogates, odd timestamps, nested arrays too deep
to parse, numbers longer than Python converts."""

junk = st.one_of(
    st.sampled_from(JUNK).map(copy.deepcopy),  # a fresh list or dict: a mutation makes no cycle
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=70),
    st.text(st.characters(categories=["Cs", "Ll"]), min_size=1, max_size=4),  # lone surrogates
    times,
    st.integers(1, 3000).map(lambda n: f"{NEST}{n}"),
    st.lists(st.integers(), max_size=3),
)


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*here, key)))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_paths(value, (*here, i)))
    return found


def _at(node: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        node = node[step]
    return node


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Any:
    data = draw(base)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(data)))
        op = draw(st.sampled_from(["replace", "delete", "extra", "retag"]))
        if not path:
            if op == "replace" and draw(st.integers(0, 9)) == 0:
                data = draw(junk)  # not an object at all
            continue
        parent, key = _at(data, path[:-1]), path[-1]
        if op == "replace":
            parent[key] = draw(junk)
        elif op == "delete":
            del parent[key]
        elif op == "extra" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "answeredById", "seq", "sentAt", "x" * 50,
                                         "\ud800", "type\udfff"]))] = draw(junk)
        elif op == "retag" and isinstance(parent, dict):
            parent[draw(st.sampled_from(["type", "subType"]))] = draw(st.sampled_from(
                [*SUBTYPES, "telephony", "welcome", "notification", "replayed", "heartbeat",
                 "resume", "Telephony", ""]))
    return data


def _dumps(data: Any, *, ensure_ascii: bool = True, separators: tuple[str, str] = (",", ":"),
           ) -> str:
    """JSON text, with the placeholders expanded (nested arrays, long numbers)."""
    raw = json.dumps(data, ensure_ascii=ensure_ascii, allow_nan=True, separators=separators)
    for mark, expand in ((NEST, lambda n: "[" * n + "]" * n), (DIGITS, lambda n: "7" * n)):
        quoted = json.dumps(mark)[:-1]  # '"\u0000nest:' as it is written in the JSON text
        while quoted in raw:
            start = raw.index(quoted)
            end = raw.index('"', start + 1)
            raw = raw[:start] + expand(int(raw[start + len(quoted):end])) + raw[end + 1:]
    return raw


def _text(draw: st.DrawFn, data: Any) -> str | bytes:
    raw = _dumps(data, ensure_ascii=draw(st.booleans()),
                 separators=draw(st.sampled_from([(",", ":"), (", ", ": ")])))
    edit = draw(st.sampled_from(["none"] * 6 + ["dup", "escape", "pad", "trail", "bom"]))
    if edit == "dup" and raw.endswith("}"):
        key = draw(st.sampled_from(["type", "seq", "sentAt", "notification", "heartbeatMs"]))
        raw = raw[:-1] + f',"{key}":' + _dumps(draw(junk)) + "}"
    elif edit == "escape":
        raw = raw.replace('"type"', '"\\u0074ype"', 1)
    elif edit == "pad" and raw.endswith("}"):
        room = frames.MAX_FRAME_BYTES - len(raw) - 10
        size = max(0, room + draw(st.integers(-3, 12)))
        raw = raw[:-1] + ',"pad":"' + "x" * size + '"}'
    elif edit == "trail":
        raw += draw(st.sampled_from([" ", "\n", "x", "}", "\x00", "{}"]))
    elif edit == "bom":
        raw = "\ufeff" + raw
    form = draw(st.sampled_from(["str"] * 5 + ["utf-8", "utf-16", "utf-8-sig"]))
    if form == "str":
        return raw
    return raw.encode(form, errors="surrogatepass")


# -- comparing the results -----------------------------------------------------------------


def _time(t: datetime) -> tuple[Any, ...]:
    assert isinstance(t, datetime)
    return (t.replace(tzinfo=None), t.utcoffset())


def _scalars(obj: Any, names: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for name in names:
        value = getattr(obj, name, None)
        out[name] = (type(value).__name__, value)
    return out


def envelope_form(env: Any) -> dict[str, Any]:
    p = env.payload
    return {
        "type": env.type, "subType": env.subType, "products": list(env.products),
        "targets": list(env.targets.negotiatorId), "payload": type(p).__name__,
        "sub_type": p.sub_type, "created": _time(p.created), "answered_by": p.answered_by,
        "for_product": env.for_product("agencycloud"),
        **_scalars(p, ("id", "callerId", "destinationId", "huntGroup", "answeredById")),
    }


def frame_form(frame: Any) -> dict[str, Any]:
    form: dict[str, Any] = {"type": frame.type, "class": type(frame).__name__}
    if frame.type == "notification":
        form.update(seq=(type(frame.seq).__name__, frame.seq), sentAt=_time(frame.sentAt),
                    utc=frame.sent_at_utc, notification=envelope_form(frame.notification))
    else:
        form.update(_scalars(frame, ("connectionId", "negotiatorId", "epoch", "heartbeatMs",
                                     "count", "complete")))
    return form


def outcome(parse: Any, raw: Any, form: Any, errors: type[Exception]) -> Any:
    try:
        result = parse(raw)
    except errors as exc:
        return ("rejected", type(exc).__name__)
    return ("accepted", form(result))


settings_ = settings(max_examples=300, deadline=None,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings_
@given(st.data())
def test_frames_are_accepted_and_rejected_alike_with_equal_values(data: st.DataObject) -> None:
    raw = _text(data.draw, data.draw(mutated(server_frames())))
    before = outcome(frames.parse_server_frame, raw, frame_form, FrameError)
    after = outcome(wire.parse_server_frame, raw, frame_form, FrameError)
    assert after == before


@settings_
@given(mutated(envelopes()))
def test_envelopes_read_from_json_data_are_accepted_and_rejected_alike(body: Any) -> None:
    def pydantic_side(data: Any) -> Any:
        return envelope.validate_envelope(data, strict=False)

    before = outcome(pydantic_side, body, envelope_form, ValidationFailed)
    after = outcome(wire.read_envelope, body, envelope_form, ValidationFailed)
    assert after == before


def test_the_generated_frames_are_mostly_valid_and_also_broken() -> None:
    """The strategies exercise both outcomes (a guard against a generator that only breaks)."""
    seen: set[str] = set()

    @settings(max_examples=200, deadline=None, database=None)
    @given(st.data())
    def probe(data: st.DataObject) -> None:
        raw = _text(data.draw, data.draw(mutated(server_frames())))
        seen.add(outcome(wire.parse_server_frame, raw, lambda f: None, FrameError)[0])

    probe()
    assert seen == {"accepted", "rejected"}


EXAMPLE = json.loads(
    (Path(__file__).parent.parent / "fixtures" / "platform" / "answeredCall.json").read_text()
)
BASES: list[dict[str, Any]] = [
    {"type": "welcome", "connectionId": "c1", "negotiatorId": "JAS", "epoch": "e1",
     "heartbeatMs": 15000},
    {"type": "notification", "seq": 41, "sentAt": "2026-11-30T09:00:00.000Z",
     "notification": EXAMPLE},
    {"type": "replayed", "count": 2, "complete": False},
    {"type": "heartbeat"},
]
TEXT_EDITS = [
    lambda raw: raw[:-1] + ',"type":"heartbeat"}', lambda raw: raw[:-1] + ',"seq":1}',
    lambda raw: raw[:-1] + ',"seq":true}', lambda raw: raw.replace('"type"', '"\\u0074ype"', 1),
    lambda raw: raw + " ", lambda raw: raw + "x", lambda raw: raw + "{}",
    lambda raw: "\ufeff" + raw,
    lambda raw: raw.replace("09:00", "09:\\ud800"), lambda raw: raw.replace('"JAS"', '"\\ud800"'),
    lambda raw: raw.encode(), lambda raw: raw.encode("utf-16"), lambda raw: raw.encode("utf-8-sig"),
    lambda raw: raw.encode()[:-1] + b"\xff}",
    *(lambda raw, n=n: raw[:-1] + ',"pad":"' + "x" * (frames.MAX_FRAME_BYTES - len(raw) - 9 + n)
      + '"}' for n in (-1, 0, 1)),
]


def _broken(base: dict[str, Any]) -> list[Any]:
    """Every single-field corruption of `base`: each field deleted or given each JUNK value,
    an extra key of each JUNK value in each object, and each edit of its JSON text."""
    out: list[Any] = []
    for path in _paths(base):
        for value in [*JUNK, "DELETE"]:
            data = copy.deepcopy(base)
            if not path:
                data = copy.deepcopy(value)
            elif value == "DELETE":
                del _at(data, path[:-1])[path[-1]]
            else:
                _at(data, path[:-1])[path[-1]] = copy.deepcopy(value)
            out.append(_dumps(data))
        if isinstance(_at(base, path), dict):
            for value in JUNK:
                data = copy.deepcopy(base)
                _at(data, path)["zz\ud800" if value is None else "zz"] = copy.deepcopy(value)
                out.append(_dumps(data))
    raw = _dumps(base)
    out.extend(edit(raw) for edit in TEXT_EDITS)
    return out


def test_every_single_corruption_of_each_frame_is_judged_alike() -> None:
    """Deterministic, beside the random test: each field of each frame kind, each JUNK value."""
    differ = []
    for base in BASES:
        for raw in _broken(base):
            before = outcome(frames.parse_server_frame, raw, frame_form, FrameError)
            after = outcome(wire.parse_server_frame, raw, frame_form, FrameError)
            if after != before:
                differ.append((raw[:300], before, after))
    assert differ == []


def test_every_single_corruption_of_an_envelope_is_judged_alike() -> None:
    differ = []
    for raw in _broken(EXAMPLE):
        if not isinstance(raw, str):
            continue
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError):
            continue  # not JSON: the API client never gets this far
        before = outcome(lambda d: envelope.validate_envelope(d, strict=False), body,
                         envelope_form, ValidationFailed)
        after = outcome(wire.read_envelope, body, envelope_form, ValidationFailed)
        if after != before:
            differ.append((raw[:300], before, after))
    assert differ == []
