"""The namespace fixture itself works (or skips visibly)."""

from __future__ import annotations

import subprocess
import sys

from tests.netns import veth_pair

RECEIVE = (
    "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5); "
    "s.bind(('{b}', 9999)); print(s.recvfrom(64)[0].decode())"
)
SEND = (
    "import socket; "
    "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'hello', ('{b}', 9999))"
)


def test_veth_pair_carries_a_datagram() -> None:
    with veth_pair() as pair:
        receiver = pair.popen(
            pair.ns_b,
            [sys.executable, "-c", RECEIVE.format(b=pair.address_b)],
            stdout=subprocess.PIPE,
        )
        for _ in range(20):  # the receiver may need a moment to bind; bounded retries
            pair.run(pair.ns_a, [sys.executable, "-c", SEND.format(b=pair.address_b)])
            try:
                out, _ = receiver.communicate(timeout=0.25)
                break
            except subprocess.TimeoutExpired:
                continue
        else:
            receiver.kill()
            raise AssertionError("no datagram crossed the veth pair")
        assert out.decode().strip() == "hello"
