"""The call metrics sink (admin/call_metrics.py): calls by outcome, wait and talk,
calls per member with its series capped, series of removed members and groups dropped."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from huntgroup.admin.call_metrics import OTHER_MEMBER, CallMetrics
from huntgroup.config.models import Config, GroupConfig, MemberConfig
from huntgroup.engine.b2bua.call_records import CallRecord, MemberChange


def Record(
    kind: str, group: str | None, outcome: str, wait: float, talk: float, member: str | None
) -> CallRecord:
    answered = outcome == "answered"
    return CallRecord(
        call_id="c1@test",
        node="node-1",
        kind=kind,
        group=group,
        pilot="0140000000" if group else None,
        caller="0611111111",
        callee="0140000000",
        identity="0611111111",
        arrival=1000.0,
        answer=1000.0 + wait if answered else None,
        end=1000.0 + wait + talk,
        wait=wait,
        talk=talk,
        member=member,
        outcome=outcome,
        release_code=200 if answered else 487,
        offers=(),
    )


def Change(action: str) -> MemberChange:
    return MemberChange(
        at=1000.0, group="Support", member="0102030405", action=action, reason="", origin="api"
    )


def group(name: str, *members: str, pilot: str = "0140000000") -> GroupConfig:
    return GroupConfig(
        name=name,
        pilot=pilot,
        members=tuple(MemberConfig(line=m, position=i) for i, m in enumerate(members, 1)),
    )


class Holder:
    """The configuration of the moment, replaced by a 'reload'."""

    def __init__(self, config: Config) -> None:
        self.config = config


def sink(config: Config, cap: int = 2000) -> tuple[CallMetrics, CollectorRegistry, Holder]:
    registry = CollectorRegistry()
    holder = Holder(config)
    return CallMetrics(registry, lambda: holder.config, max_member_series=cap), registry, holder


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def answered(group: str, member: str, wait: float = 12.0, talk: float = 95.0) -> Record:
    return Record("group", group, "answered", wait, talk, member)


def test_each_outcome_counts_and_waits_go_to_the_histogram_with_answered_apart() -> None:
    metrics, registry, _ = sink(Config(groups=(group("Support", "0102030405"),)))
    metrics.call_ended(answered("Support", "0102030405", wait=12.0, talk=95.0))
    metrics.call_ended(Record("group", "Support", "abandoned", 40.0, 0.0, None))
    metrics.call_ended(Record("group", "Support", "timeout", 120.0, 0.0, None))
    metrics.call_ended(Record("direct", None, "answered", 3.0, 60.0, "0102030405"))
    metrics.member_changed(Change("pause"))
    got = samples(registry)
    calls = "huntgroup_calls_total"
    assert got[(calls, (("group", "Support"), ("outcome", "answered")))] == 1
    assert got[(calls, (("group", "Support"), ("outcome", "abandoned")))] == 1
    assert got[(calls, (("group", "Support"), ("outcome", "timeout")))] == 1
    assert got[("huntgroup_line_calls_total", (("kind", "direct"), ("outcome", "answered")))] == 1
    bucket = "huntgroup_wait_seconds_bucket"
    yes = (("answered", "true"), ("group", "Support"))
    no = (("answered", "false"), ("group", "Support"))
    assert got[(bucket, (*yes, ("le", "10.0")))] == 0
    assert got[(bucket, (*yes, ("le", "15.0")))] == 1  # answered within 15 s
    assert got[(bucket, (*no, ("le", "60.0")))] == 1  # the abandon at 40 s
    assert got[("huntgroup_wait_seconds_count", no)] == 2
    assert got[("huntgroup_wait_seconds_sum", no)] == 160.0
    assert got[("huntgroup_talk_seconds_sum", (("group", "Support"),))] == 95.0
    member = (("group", "Support"), ("member", "0102030405"))
    assert got[("huntgroup_member_answered_total", member)] == 1
    assert got[("huntgroup_member_changes_total", (("action", "pause"),))] == 1


def test_members_beyond_the_cap_share_the_other_series() -> None:
    config = Config(
        groups=(
            group("Support", "0100000001", "0100000002"),
            group("Sales", "0100000003", pilot="0140000001"),
        )
    )
    metrics, registry, _ = sink(config, cap=2)
    for member in ("0100000001", "0100000002"):
        metrics.call_ended(answered("Support", member))
    metrics.call_ended(answered("Sales", "0100000003"))
    metrics.call_ended(answered("Sales", "0100000003"))
    metrics.call_ended(answered("Support", "0199999999"))  # not (or no longer) listed
    got = samples(registry)
    per_member = {
        labels: v for (name, labels), v in got.items() if name == "huntgroup_member_answered_total"
    }
    assert per_member == {
        (("group", "Support"), ("member", "0100000001")): 1,
        (("group", "Support"), ("member", "0100000002")): 1,
        (("group", "Sales"), ("member", OTHER_MEMBER)): 2,  # the third pair: beyond the cap
        (("group", "Support"), ("member", OTHER_MEMBER)): 1,
    }


def test_a_reload_drops_the_series_of_removed_members_and_groups() -> None:
    before = Config(
        groups=(
            group("Support", "0100000001", "0100000002"),
            group("Sales", "0100000003", pilot="0140000001"),
        )
    )
    metrics, registry, holder = sink(before, cap=2)
    metrics.call_ended(answered("Support", "0100000001"))
    metrics.call_ended(answered("Support", "0100000002"))
    metrics.call_ended(answered("Sales", "0100000003"))  # "other": beyond the cap
    holder.config = Config(groups=(group("Support", "0100000002", "0100000004"),))
    metrics.follow_config()  # what a scrape does first
    got = samples(registry)
    per_member = {
        labels: v for (name, labels), v in got.items() if name == "huntgroup_member_answered_total"
    }
    assert per_member == {(("group", "Support"), ("member", "0100000002")): 1}
    assert not [key for key in got if ("group", "Sales") in key[1]], "Sales is gone"
    assert got[("huntgroup_calls_total", (("group", "Support"), ("outcome", "answered")))] == 2
    metrics.call_ended(answered("Support", "0100000004"))  # the freed place is its own now
    got = samples(registry)
    member = (("group", "Support"), ("member", "0100000004"))
    assert got[("huntgroup_member_answered_total", member)] == 1
