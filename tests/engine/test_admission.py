"""CallAdmission: max calls at once and new calls per second (server.limits)."""

from __future__ import annotations

from huntgroup.engine.admission import CallAdmission


def test_max_calls_counts_the_calls_in_progress() -> None:
    admission = CallAdmission(2, None, now=0.0)
    assert admission.admit(0, now=0.0) is None
    assert admission.admit(1, now=0.0) is None
    refusal = admission.admit(2, now=0.0)
    assert refusal is not None and refusal.retry_after == 5 and "max_calls" in refusal.reason


def test_the_rate_is_a_bucket_of_one_second_refilled_continuously() -> None:
    admission = CallAdmission(None, 4, now=0.0)
    assert [admission.admit(0, now=0.0) is None for _ in range(5)] == [True] * 4 + [False]
    assert admission.admit(0, now=0.1) is not None, "0.1 s at 4/s: 0.4 token, not enough"
    assert admission.admit(0, now=0.25) is None, "0.25 s: 1 token back (a refusal took none)"
    assert admission.admit(0, now=0.25) is not None
    assert [admission.admit(0, now=10.0) is None for _ in range(5)] == [True] * 4 + [False], (
        "never more than one second's worth"
    )


def test_no_limits_admit_everything() -> None:
    admission = CallAdmission(None, None, now=0.0)
    assert all(admission.admit(n, now=0.0) is None for n in range(10_000))
