"""Pairing replies with requests: what is forgotten, and when."""

from __future__ import annotations

from analyzer.keepalive.pairing import Pairer
from analyzer.read.packet import InnerHeader

A, B = "192.0.2.1", "198.51.100.1"


def request(pairer: Pairer, frame: int, time: float, ident: int) -> None:
    # A's keepalive: the inner packet goes from B back to A, IP ID `ident`
    inner = InnerHeader(B, A, 4, ident, 255, None, False, None)
    assert pairer.add_request(frame, time, A, B, None, 4, inner, 0) is not None


def reply(pairer: Pairer, frame: int, time: float, ident: int) -> bool:
    """Whether the reply was taken (False: a duplicate)."""
    return pairer.add_reply(frame, time, B, A, None, ident, 254, 0) is not None


def test_a_prune_forgets_the_answers_older_than_the_longest_round_trip() -> None:
    pairer = Pairer()
    for frame, (time, ident) in enumerate([(0.0, 1), (10.5, 2), (11.5, 3), (40.0, 4)]):
        request(pairer, 2 * frame + 1, time, ident)
        assert reply(pairer, 2 * frame + 2, time + 0.02, ident)
    pairer._prune(41.0)  # horizon 41 - MAX_RTT = 11.0: the requests of 0 and 10.5 s expire
    assert sorted(ident for _src, _dst, ident in pairer._answered) == [3, 4]


def test_an_answer_given_again_later_is_kept_by_its_new_time() -> None:
    pairer = Pairer()
    request(pairer, 1, 0.0, 7)
    assert reply(pairer, 2, 0.02, 7)
    request(pairer, 3, 20.0, 7)  # the IP ID comes round again
    assert reply(pairer, 4, 20.02, 7)
    pairer._prune(45.0)  # horizon 15.0: the first request is older, the second is not
    assert list(pairer._answered) == [(B, A, 7)]
    assert not reply(pairer, 5, 20.3, 7)  # the same reply again, 0.28 s later: a duplicate
