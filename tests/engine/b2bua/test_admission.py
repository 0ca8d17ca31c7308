"""CallAdmission: max calls at once and new calls per second (server.limits)."""

from __future__ import annotations

from huntgroup.engine.b2bua.admission import DROP, PASS, REFUSE, CallAdmission, SourceLimiter


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


# ------------------------------------------------ saturation (issue 9, point 11)


def test_a_lagging_loop_makes_the_node_overloaded_until_the_lag_goes_away() -> None:
    admission = CallAdmission(None, None, now=0.0, max_loop_lag=0.1)
    assert admission.overloaded(now=0.0) is None, "no fact yet: not overloaded"
    admission.loop_lag(2.0, now=0.0)  # the first sample (start-up) only starts the clock
    assert admission.overloaded(now=0.0) is None
    t = 0.0
    for _ in range(20):  # 2 s of a loop 300 ms late: the smoothed lag passes 100 ms
        t += 0.1
        admission.loop_lag(0.3, now=t)
    refusal = admission.overloaded(now=t)
    assert refusal is not None and refusal.retry_after == 1 and "max_loop_lag" in refusal.reason
    for _ in range(30):  # 3 s back on time
        t += 0.1
        admission.loop_lag(0.001, now=t)
    assert admission.overloaded(now=t) is None


def test_one_late_callback_is_smoothed_away() -> None:
    admission = CallAdmission(None, None, now=0.0, max_loop_lag=0.1)
    admission.loop_lag(0.0, now=0.0)
    admission.loop_lag(0.15, now=0.05)  # one GC pause, 50 ms after the last sample
    assert admission.overloaded(now=0.05) is None


def test_cpu_load_past_its_limit_makes_the_node_overloaded() -> None:
    admission = CallAdmission(None, None, now=0.0, max_load=0.9)
    admission.loop_load(0.5, now=0.0)
    assert admission.overloaded(now=0.0) is None
    for i in range(1, 21):
        admission.loop_load(1.0, now=i * 0.1)
    refusal = admission.overloaded(now=2.0)
    assert refusal is not None and "max_load" in refusal.reason


def test_a_stale_fact_no_longer_blocks_calls() -> None:
    admission = CallAdmission(None, None, now=0.0, max_loop_lag=0.1)
    admission.loop_lag(0.0, now=0.0)
    admission.loop_lag(5.0, now=0.5)
    assert admission.overloaded(now=1.0) is not None
    assert admission.overloaded(now=10.0) is None, "a driver that stopped measuring"


# ------------------------------------------------------ per-source limits


def test_a_source_bucket_refills_over_scripted_time() -> None:
    limiter = SourceLimiter(2.0, 4, table_size=100)
    verdicts = [limiter.check("192.0.2.1", now=0.0) for _ in range(12)]
    assert verdicts == [PASS] * 4 + [REFUSE] * 4 + [DROP] * 4
    assert limiter.check("192.0.2.2", now=0.0) == PASS, "another source has its own bucket"
    assert limiter.check("192.0.2.1", now=0.25) == DROP, "0.5 token: not one yet"
    assert limiter.check("192.0.2.1", now=0.5) == PASS, "1 s at 2/s: one token back"
    assert [limiter.check("192.0.2.1", now=100.0) for _ in range(5)] == [PASS] * 4 + [REFUSE]
    assert limiter.retry_after == 2


def test_the_source_table_stays_bounded_and_forgets_the_least_recent() -> None:
    limiter = SourceLimiter(1.0, 1, table_size=16)
    for i in range(1000):
        limiter.check(f"198.51.100.{i % 250}.{i}", now=float(i))
        assert len(limiter) <= 16
    assert len(limiter) == 16
    limiter.check("203.0.113.1", now=2000.0)  # seen first, never over its rate
    for i in range(16):  # 16 newer sources push it out: it starts afresh
        limiter.check(f"203.0.113.{100 + i}", now=2000.0)
    assert not limiter.held("203.0.113.1", now=2000.0)
    assert limiter.check("203.0.113.1", now=2000.0) == PASS


def test_a_flood_of_new_sources_cannot_evict_a_source_over_its_rate() -> None:
    """Review 2, C: a key refused lately is held for burst / rate seconds; new keys
    evict the least recent among the others, and none at all when every key is held."""
    limiter = SourceLimiter(1.0, 1, table_size=16)
    assert [limiter.check("203.0.113.9", now=0.0) for _ in range(3)] == [PASS, REFUSE, DROP]
    for i in range(1000):  # spoofed sources, each new
        limiter.check(f"198.51.100.{i % 250}.{i}", now=0.5)
        assert len(limiter) <= 16
    assert limiter.held("203.0.113.9", now=0.5)
    assert limiter.check("203.0.113.9", now=0.5) == DROP  # still over its rate
    for i in range(985, 1000):  # the others over their rates too: every key is held
        assert limiter.check(f"198.51.100.{i % 250}.{i}", now=0.6) == REFUSE
    assert limiter.check("192.0.2.77", now=0.6) == DROP  # a new key evicts nobody
    assert len(limiter) == 16 and limiter.held("203.0.113.9", now=0.6)
    # a hold ends burst / rate seconds after the last refusal: then evictable again
    assert not limiter.held("203.0.113.9", now=1.5)
    assert limiter.check("192.0.2.77", now=1.6) == PASS
    assert len(limiter) == 16
