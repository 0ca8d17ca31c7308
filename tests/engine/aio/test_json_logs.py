"""``--log-format json``: one JSON object per line, whatever the message holds."""

from __future__ import annotations

import io
import json
import logging
import math
import sys
import warnings

import pytest

from huntgroup.engine.aio.json_logs import (
    TEXT_FORMAT,
    JsonFormatter,
    capture_python_output,
    log_formatter,
    rfc3339,
)

HOSTILE = 'caller "0611"\n\r{"level": "FAKE"}\\ \x00\x1b[31m\u2028\u2029\ud800 Équipe'


def record(
    message: str = "call %s: ringing %s", *args: object, **extra: object
) -> logging.LogRecord:
    made = logging.LogRecord(
        "huntgroup.calls", logging.INFO, __file__, 1, message, args or ("k1", "m1"), None
    )
    made.created = 1_796_625_531.1239  # 2026-12-07T06:38:51.123Z
    for key, value in extra.items():
        setattr(made, key, value)
    return made


def test_the_fixed_fields_come_first_then_what_the_call_passed() -> None:
    line = JsonFormatter().format(
        record(call_id="k1", group="Support", event="ringing", member="m1")
    )
    assert json.loads(line) == {
        "time": "2026-12-07T06:38:51.123Z",
        "level": "INFO",
        "logger": "huntgroup.calls",
        "message": "call k1: ringing m1",
        "call_id": "k1",
        "group": "Support",
        "event": "ringing",
        "member": "m1",
    }
    assert list(json.loads(line))[:4] == ["time", "level", "logger", "message"]


def test_time_is_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1_796_625_531.9999) == "2026-12-07T06:38:51.999Z"


def test_hostile_strings_stay_on_one_line_of_ascii_and_parse_back() -> None:
    line = JsonFormatter().format(
        record("call %s: %s -> group %s", "k1", HOSTILE, HOSTILE, group=HOSTILE, event="arrived")
    )
    assert "\n" not in line and "\r" not in line and line.isascii()
    assert len(line.splitlines()) == 1  # U+2028/U+2029 are escaped too
    parsed = json.loads(line)
    assert parsed["group"] == HOSTILE
    assert parsed["message"] == f"call k1: {HOSTILE} -> group {HOSTILE}"
    assert parsed["level"] == "INFO"


def test_a_traceback_is_one_field_not_lines_of_its_own() -> None:
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        made = record("internal error in call %s (%s)")
        made.exc_info = sys.exc_info()
    line = JsonFormatter().format(made)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["exception"].startswith("Traceback (most recent call last):")
    assert "RuntimeError: boom\nsecond line" in parsed["exception"]


def test_a_stack_is_one_field() -> None:
    made = record()
    made.stack_info = "Stack (most recent call last):\n  File x\n"
    assert json.loads(JsonFormatter().format(made))["stack"].startswith("Stack")


def test_values_json_has_no_type_for_are_written_as_text() -> None:
    parsed = json.loads(JsonFormatter().format(record(peer=("127.0.0.1", 5060), obj=object())))
    assert parsed["peer"] == ["127.0.0.1", 5060]
    assert parsed["obj"].startswith("<object object at")
    nan = JsonFormatter().format(record(lag=math.nan, call_id="k1"))
    assert json.loads(nan)["lag"] == "nan"  # never a bare NaN, which is no JSON
    assert json.loads(nan)["call_id"] == "k1"


def test_the_text_format_is_the_line_it_always_was() -> None:
    made = record(call_id="k1", group="Support", event="ringing")
    old = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s").format(made)
    assert log_formatter("text").format(made) == old
    assert TEXT_FORMAT == "%(asctime)s %(levelname)s %(name)s: %(message)s"
    assert old.endswith(" INFO huntgroup.calls: call k1: ringing m1")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="one of text, json"):
        log_formatter("xml")


def test_a_real_handler_writes_one_parsable_line_per_record() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter("json"))
    logger = logging.getLogger("huntgroup.test_json_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("one %s", HOSTILE, extra={"call_id": "k9"})
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            logger.exception("two")
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().split("\n")
    assert lines[-1] == ""
    parsed = [json.loads(line) for line in lines[:-1]]
    assert [p["message"] for p in parsed] == [f"one {HOSTILE}", "two"]
    assert parsed[0]["call_id"] == "k9" and "ZeroDivisionError" in parsed[1]["exception"]


def test_python_own_output_goes_through_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(log_formatter("json"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        capture_python_output()
        try:
            raise OSError("uncaught\\nat start")
        except OSError as err:
            sys.excepthook(type(err), err, err.__traceback__)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("a deprecated thing", DeprecationWarning, stacklevel=1)
    finally:
        root.removeHandler(handler)
        logging.captureWarnings(False)
    parsed = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert parsed[0]["level"] == "CRITICAL" and "OSError: uncaught" in parsed[0]["exception"]
    assert parsed[1]["logger"] == "py.warnings" and "a deprecated thing" in parsed[1]["message"]


def test_a_log_call_whose_arguments_do_not_fit_still_gives_one_line() -> None:
    parsed = json.loads(JsonFormatter().format(record("call %s: %d calls", "k1", "many")))
    assert parsed["message"].startswith("'call %s: %d calls' % ('k1', 'many') (bad log call:")
