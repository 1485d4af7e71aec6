"""The delta messages between the Faust agents: what phase 1 writes, phase 2 reads back as the
same deltas (the group written once per message), and older forms still read."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_pulse.metrics.deltas import Delta, group_key
from crm_pulse.streams.faust.phases import BadMessage, Encoder, decode, pack

scalars = st.one_of(
    st.none(),
    st.text(max_size=6),
    st.integers(-(10**12), 10**12),
    st.dates(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
slots = st.one_of(scalars, st.tuples(scalars, scalars))
groups = st.one_of(
    st.just(()),
    st.tuples(st.sampled_from(["owner_id", "account_id"]), st.text(max_size=5)),
    st.tuples(st.sampled_from(["owner_id"]), st.none()),
)


def _via_to_wire(d: Delta) -> Delta:
    """What the former wire form (six items per delta) decodes to: the reference."""
    return Delta.from_wire(json.loads(json.dumps(d.to_wire())))


@settings(max_examples=200, deadline=None)
@given(
    group=groups,
    deltas=st.lists(
        st.tuples(
            st.integers(0, 50),
            slots,
            slots,
            st.integers(-(10**9), 10**9),
            st.sampled_from([-1, 0, 1]),
        ),
        min_size=1,
        max_size=12,
    ),
    most=st.integers(1, 4),
)
def test_a_delta_message_decodes_to_the_deltas_written(
    group: tuple[Any, ...], deltas: list[tuple[Any, ...]], most: int
) -> None:
    encoder = Encoder()
    sent = [Delta(m, group, slot, value, delta, dn) for m, slot, value, delta, dn in deltas]
    key = group_key(group).encode()
    entries = []
    for offset, d in enumerate(sent):  # one entry per delta, each at its own offset
        (items,) = encoder.by_group([d]).values()
        entries.append((key, {"p": 1, "o": offset, "d": items}))
    got = [(p, o, ds) for _key, body in pack(entries, most=most) for p, o, ds in decode(body)]
    assert [o for _p, o, _ds in got] == list(range(len(sent)))
    assert all(p == 1 for p, _o, _ds in got)
    assert [ds for _p, _o, ds in got] == [[_via_to_wire(d)] for d in sent]


def test_messages_of_the_former_forms_still_decode() -> None:
    d = Delta(3, ("owner_id", "u1"), date(2026, 3, 1), None, 500, 1)
    by_position = json.dumps({"entries": [{"p": 2, "o": 7, "deltas": [d.to_wire()]}]}).encode()
    by_record = json.dumps({"record": "r1", "seq": 4, "deltas": [d.to_wire()]}).encode()
    assert decode(by_position) == [(2, 7, [d])]
    assert decode(by_record) == [("r1", 4, [d])]


@pytest.mark.parametrize(
    "body",
    [
        b'{"entries": [{"p": 0, "o": 1, "d": [[1, null, null, 1, 1]]}]}',  # no group named
        b'{"g": "x", "entries": [{"p": 0, "o": 1, "d": [[1, null, null, 1, 1]]}]}',
        b'{"g": [], "entries": [{"p": 0, "o": 1, "d": [[1, null, null, 1]]}]}',
        b'{"g": [], "entries": [{"p": 0, "o": 1, "d": [["1", null, null, 1, 1]]}]}',
        b'{"g": [], "entries": [{"p": 0, "o": 1, "d": [[1, {"date": "x"}, null, 1, 1]]}]}',
        b'{"g": [], "entries": [{"p": 0, "o": 1, "d": {}}]}',
        b'{"g": [], "entries": [{"p": "0", "o": 1, "d": []}]}',
    ],
)
def test_a_malformed_delta_message_is_refused_with_a_reason(body: bytes) -> None:
    with pytest.raises(BadMessage, match="not a delta message"):
        decode(body)


def test_tuple_and_date_shapes_match_the_former_form() -> None:
    d = Delta(1, (), (date(2026, 1, 2), date(2026, 1, 1)), ("a", 2), 1, 1)
    ((_key, body),) = pack([(b"[]", {"p": 0, "o": 0, "d": Encoder().by_group([d])[()]})])
    assert decode(body) == [(0, 0, [_via_to_wire(d)])]


def test_an_agents_output_goes_where_faust_put_it_in_order() -> None:
    """:class:`BulkTopic` places a keyed message as Faust's producer does (aiokafka's default
    partitioner: phase 2 and the timers find a group's deltas by it, ``owned_by``), keeps an
    explicit partition (first-read markers), and the order within each partition."""
    import asyncio

    from aiokafka.partitioner import DefaultPartitioner

    from crm_pulse.streams.faust.aggregates import owned_by
    from crm_pulse.streams.faust.bulk import BulkTopic

    appended: dict[int, list[tuple[bytes | None, bytes | None]]] = {}

    class Output:
        async def partitions(self, topic: str) -> list[int]:
            return [0, 1, 2, 3]

        async def append(self, topic: str, partition: int, records: Any) -> int:
            assert partition not in appended, "one append per partition and call"
            appended[partition] = list(records)
            return 0

    groups = [(), ("owner_id", "u1"), ("owner_id", "u2"), ("account_id", "a9")]
    messages: list[tuple[bytes | None, bytes, int | None]] = [
        (group_key(g).encode(), f"{i}".encode(), None) for i, g in enumerate(groups * 3)
    ]
    messages.append((b"\x00first-read", b"marker", 2))
    asyncio.run(BulkTopic(Output(), "t-deltas").send_all(messages))  # type: ignore[arg-type]

    every = [0, 1, 2, 3]
    for key, value, partition in messages:
        where = partition if partition is not None else DefaultPartitioner()(key, every, every)
        assert (key, value) in appended[where]
    for g in groups:
        (where,) = (p for p in every if owned_by({p}, 4)(g))
        mine = [v for k, v in appended[where] if k == group_key(g).encode()]
        assert mine == [v for k, v, _p in messages if k == group_key(g).encode()]  # in order
    assert appended[2][-1] == (b"\x00first-read", b"marker")


def test_floats_and_non_finite_values_travel_as_the_standard_library_wrote_them() -> None:
    """Delta messages are written by msgspec; a NaN or an infinity (no event gives one) is
    still written as ``json.dumps`` writes it (``NaN``, ``Infinity``) and read back, not as
    msgspec's ``null``; a message of an earlier worker with them still decodes."""
    import math

    values = [0.1, 1e16, -2.5e-7, 123456789.125, math.inf, -math.inf, math.nan]
    sent = [Delta(1, (), None, v, 1, 1) for v in values] + [
        Delta(2, (), (1.5, math.inf), (math.nan, "a"), 1, 0)
    ]
    items = Encoder().by_group(sent)[()]
    ((_key, body),) = pack([(b"[]", {"p": 0, "o": 0, "d": items})])
    former = json.dumps(
        {"g": [], "entries": [{"p": 0, "o": 0, "d": [[1, None, v, 1, 1] for v in values]}]},
        separators=(",", ":"),
    ).encode()
    assert body.startswith(b'{"g":[],"entries":[{"p":0,"o":0,"d":[[1,null,0.1,1,1],')
    for token in (b",NaN,1,1]", b",Infinity,1,1]", b",-Infinity,1,1]"):
        assert token in body
    for raw in (body, former):
        ((_p, _o, got),) = decode(raw)
        for d, v in zip(got, values, strict=False):
            assert (math.isnan(d.value) and math.isnan(v)) or d.value == v
    ((_p, _o, got),) = decode(body)
    last = got[-1]
    assert last.slot == (1.5, math.inf) and math.isnan(last.value[0]) and last.value[1] == "a"
