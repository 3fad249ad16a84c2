"""Acceptance on real public captures (tests/data/real, see its INDEX.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.cli import main
from tests import conftest
from tests.conftest import all_captures


def _analyze_json(capture: Path, tmp_path: Path, *extra: str) -> dict[str, object]:
    out = tmp_path / "out.json"
    assert main(["analyze", str(capture), "--format", "json", "-o", str(out), *extra]) == 0
    document: dict[str, object] = json.loads(out.read_text())
    return document


def test_real_cisco_ios_capture(real_captures_dir: Path, tmp_path: Path) -> None:
    document = _analyze_json(real_captures_dir / "tcpdump__various_gre.pcap", tmp_path)
    tunnels = document["tunnels"]
    assert isinstance(tunnels, list) and len(tunnels) == 1
    tunnel = tunnels[0]
    assert tunnel["endpoints"] == ["10.172.64.6", "10.172.64.7"]
    assert tunnel["key"] == 40
    summary = [
        (o["address"], o["sent"], o["returned"], o["period"], o["period_source"])
        for o in tunnel["originators"]
    ]
    assert summary == [
        ("10.172.64.6", 4, 4, 10.0, "inferred"),
        ("10.172.64.7", 4, 4, 10.0, "inferred"),
    ]


def test_real_cisco_ios_reply_pairs_with_request_by_inner_ip_id(
    real_captures_dir: Path, tmp_path: Path
) -> None:
    # Frame 11 is 10.172.64.7's request (inner IP ID 0x00a3), frame 12 its reply (TTL 254).
    document = _analyze_json(real_captures_dir / "tcpdump__various_gre.pcap", tmp_path)
    originator = document["tunnels"][0]["originators"][1]  # type: ignore[index]
    first = originator["keepalives"][0]
    assert (first["frame"], first["ident"], first["partner_frame"], first["reply_ttl"]) == (
        11,
        0xA3,
        12,
        254,
    )


def test_real_cisco_capture_vantage(real_captures_dir: Path, tmp_path: Path) -> None:
    # .7 reflects .6's keepalives within ~80 µs: the capture was taken next to .7.
    document = _analyze_json(real_captures_dir / "tcpdump__various_gre.pcap", tmp_path)
    assert document["tunnels"][0]["vantage"] == "10.172.64.7"  # type: ignore[index]


def test_crafted_keepalive_without_reply(real_captures_dir: Path, tmp_path: Path) -> None:
    # PcapPlusPlus frame 3: a keepalive on 127.0.0.1 with an outer GRE checksum, no reply.
    document = _analyze_json(real_captures_dir / "PcapPlusPlus__GrePackets.pcap", tmp_path)
    tunnel, *_data_only = document["tunnels"]  # type: ignore[misc]
    (originator,) = tunnel["originators"]
    assert (originator["sent"], originator["returned"]) == (1, 0)
    assert all(not t["originators"] for t in _data_only)
    assert originator["keepalives"][0]["frame"] == 3


def test_nested_gre_is_not_a_keepalive(real_captures_dir: Path, tmp_path: Path) -> None:
    document = _analyze_json(real_captures_dir / "zeek__gre-within-gre.pcap", tmp_path)
    assert [t["originators"] for t in document["tunnels"]] == [[]]  # type: ignore[union-attr]
    assert document["source"]["gre_packets"] == 628  # type: ignore[index]


@pytest.mark.parametrize("capture", all_captures(), ids=lambda p: p.name)
def test_every_capture_is_analysed(capture: Path, tmp_path: Path) -> None:
    for output_format in ("text", "json", "csv"):
        out = tmp_path / f"out.{output_format}"
        assert main(["analyze", str(capture), "--format", output_format, "-o", str(out)]) == 0
        assert out.stat().st_size > 0


def test_a_checkout_without_its_real_captures_fails_rather_than_skips(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(conftest, "REAL_CAPTURES", tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no real captures"):
        conftest.all_captures()
    (tmp_path / "missing").mkdir()
    with pytest.raises(FileNotFoundError, match="no real captures"):
        conftest.real_capture_files()


def test_the_real_captures_are_those_of_the_index() -> None:
    index = (conftest.REAL_CAPTURES / "INDEX.md").read_text()
    listed = {line.split("`")[1] for line in index.splitlines() if line.startswith("| `")}
    assert {path.name for path in conftest.real_capture_files()} == listed
