"""Tests for analyzer.config: IOS running-config and TOML ``--config`` files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from analyzer.config import (
    ConfigError,
    KeepaliveConfig,
    TunnelConfig,
    load_config,
    parse_ios,
    parse_toml,
)

DATA = Path(__file__).parent / "data" / "config"
WARNING_LINE = re.compile(r"^[^\n]+:\d+: \S")


def error_of(func: object, *args: object) -> str:
    """Run ``func(*args)``, expect ConfigError, check it is ONE line and return its text."""
    assert callable(func)
    with pytest.raises(ConfigError) as info:
        func(*args)
    text = str(info.value)
    assert len(text.splitlines()) == 1, text
    return text


def ios(body: str) -> KeepaliveConfig:
    return parse_ios(body, "r.cfg")


def only(config: KeepaliveConfig) -> TunnelConfig:
    assert len(config.tunnels) == 1, config.tunnels
    return config.tunnels[0]


# --------------------------------------------------------------------------------------------
# IOS: the technote seed and realistic running-configs
# --------------------------------------------------------------------------------------------


def test_technote_back_to_back_parses_into_two_tunnels() -> None:
    path = DATA / "technote_back_to_back.cfg"
    config = load_config(path)
    assert config.format == "ios"
    assert config.tunnels == (
        TunnelConfig("128.8.8.8", "129.9.9.9", None, True, 5.0, 4, "Tunnel0", f"{path}:1"),
        TunnelConfig("129.9.9.9", "128.8.8.8", None, True, 5.0, 4, "Tunnel0", f"{path}:9"),
    )
    assert config.warnings == ()
    assert config.default_period is None
    assert config.default_retries is None


def test_technote_loopback_source_resolved_per_router() -> None:
    config = load_config(DATA / "technote_loopback_source.cfg")
    assert [(t.source, t.destination) for t in config.tunnels] == [
        ("128.8.8.8", "129.9.9.9"),
        ("129.9.9.9", "128.8.8.8"),
    ]


def test_running_config_tunnel_source_interface_uses_primary_address() -> None:
    config = load_config(DATA / "running_config.txt")
    tunnel = config.tunnels[0]
    assert tunnel.name == "Tunnel100"
    assert tunnel.source == "203.0.113.1"  # not the secondary 203.0.113.99
    assert tunnel.destination == "198.51.100.2"


def test_running_config_key_and_keepalive() -> None:
    tunnel = load_config(DATA / "running_config.txt").tunnels[0]
    assert (tunnel.key, tunnel.keepalive, tunnel.period, tunnel.retries) == (42, True, 2.0, 5)


def test_running_config_ipv6_gre_tunnel_normalised() -> None:
    path = DATA / "running_config.txt"
    tunnel = load_config(path).tunnels[1]
    assert tunnel == TunnelConfig(
        "2001:db8:ff::1", "2001:db8:0:2::2", None, True, 3.0, 2, "Tunnel200", f"{path}:32"
    )


def test_running_config_skips_mgre_without_destination_and_ipsec() -> None:
    path = DATA / "running_config.txt"
    config = load_config(path)
    assert [t.name for t in config.tunnels] == ["Tunnel100", "Tunnel200"]
    assert len(config.warnings) == 2
    assert config.warnings[0].startswith(f"{path}:40: Tunnel300: ")
    assert "mGRE" in config.warnings[0]
    assert config.warnings[1].startswith(f"{path}:51: Tunnel400: tunnel mode ipsec ipv4")


def test_running_config_lookup() -> None:
    config = load_config(DATA / "running_config.txt")
    assert config.lookup("203.0.113.1", "198.51.100.2", 42) is config.tunnels[0]
    assert config.lookup("2001:DB8:FF::1", "2001:db8:0:2:0:0:0:2", None) is config.tunnels[1]


def test_hostname_lines_split_routers_for_source_resolution() -> None:
    config = ios(
        "hostname R1\n"
        "interface Tunnel0\n tunnel source Loopback0\n tunnel destination 10.0.0.2\n"
        " keepalive 5 4\n"
        "interface Loopback0\n ip address 10.0.0.1 255.255.255.255\n"
        "hostname R2\n"
        "interface Tunnel7\n tunnel source Loopback0\n tunnel destination 10.0.0.1\n"
        " keepalive 5 4\n"
        "interface Loopback0\n ip address 10.0.0.2 255.255.255.255\n"
    )
    assert [(t.name, t.source, t.destination) for t in config.tunnels] == [
        ("Tunnel0", "10.0.0.1", "10.0.0.2"),
        ("Tunnel7", "10.0.0.2", "10.0.0.1"),
    ]


# --------------------------------------------------------------------------------------------
# IOS: keepalive command forms
# --------------------------------------------------------------------------------------------

TUNNEL = "interface Tunnel1\n tunnel source 10.0.0.1\n tunnel destination 10.0.0.2\n"


def test_ios_keepalive_alone_is_10_3() -> None:
    tunnel = only(ios(TUNNEL + " keepalive\n"))
    assert (tunnel.keepalive, tunnel.period, tunnel.retries) == (True, 10.0, 3)


def test_ios_keepalive_period_only_uses_3_retries() -> None:
    tunnel = only(ios(TUNNEL + " keepalive 7\n"))
    assert (tunnel.keepalive, tunnel.period, tunnel.retries) == (True, 7.0, 3)


def test_ios_keepalive_0_is_off() -> None:
    assert only(ios(TUNNEL + " keepalive 0\n")).keepalive is False


def test_ios_no_keepalive_is_off() -> None:
    tunnel = only(ios(TUNNEL + " no keepalive\n"))
    assert (tunnel.keepalive, tunnel.period, tunnel.retries) == (False, None, None)


def test_ios_tunnel_without_keepalive_line_is_off() -> None:
    tunnel = only(ios(TUNNEL))
    assert (tunnel.keepalive, tunnel.period, tunnel.retries) == (False, None, None)


def test_ios_keepalive_on_physical_interface_is_ignored() -> None:
    config = ios(TUNNEL + "interface Serial0/0\n ip address 10.0.0.1 255.255.255.252\n keepalive\n")
    assert only(config).keepalive is False


# --------------------------------------------------------------------------------------------
# IOS: names, keys and modes
# --------------------------------------------------------------------------------------------


def test_ios_tunnel_key_dotted_quad() -> None:
    assert only(ios(TUNNEL + " tunnel key 0.0.1.2\n")).key == 258


def test_ios_abbreviated_interface_names_resolve() -> None:
    config = ios(
        "interface Tu0\n tunnel source Lo0\n tunnel destination 192.0.2.2\n"
        "interface Loopback0\n ip address 192.0.2.1 255.255.255.255\n"
    )
    assert (only(config).name, only(config).source) == ("Tunnel0", "192.0.2.1")


def test_ios_source_interface_full_name_matches_abbreviated_block() -> None:
    config = ios(
        "interface Gi0/0\n ip address 192.0.2.1 255.255.255.0\n"
        "interface Tunnel2\n tunnel source GigabitEthernet0/0\n tunnel destination 192.0.2.9\n"
    )
    assert only(config).source == "192.0.2.1"


def test_ios_source_interface_written_with_space() -> None:
    config = ios(
        "interface Tunnel2\n tunnel source loopback 0\n tunnel destination 192.0.2.9\n"
        "interface Loopback0\n ip address 192.0.2.1 255.255.255.255\n"
    )
    assert only(config).source == "192.0.2.1"


def test_ios_mgre_with_destination_is_recorded_with_warning() -> None:
    config = ios(TUNNEL + " tunnel mode gre multipoint\n keepalive 5 3\n")
    assert only(config).period == 5.0
    assert config.warnings == (
        "r.cfg:4: Tunnel1: keepalives are not supported on multipoint GRE (mGRE) tunnels",
    )


def test_ios_ipip_mode_is_skipped_with_warning() -> None:
    config = ios(TUNNEL + " tunnel mode ipip\n")
    assert config.tunnels == ()
    assert config.warnings[0].startswith("r.cfg:4: Tunnel1: tunnel mode ipip ")


def test_ios_hostname_destination_is_skipped_with_warning() -> None:
    config = ios("interface Tunnel1\n tunnel source 10.0.0.1\n tunnel destination hub.example\n")
    assert config.tunnels == ()
    assert config.warnings[0].startswith("r.cfg:3: Tunnel1: tunnel destination 'hub.example'")


def test_ios_tunnel_without_destination_is_skipped_with_warning() -> None:
    config = ios("interface Tunnel1\n tunnel source 10.0.0.1\n keepalive 5 4\n")
    assert config.tunnels == ()
    assert config.warnings == ("r.cfg:1: Tunnel1: no tunnel destination; tunnel skipped",)


def test_ios_unknown_source_interface_is_skipped_with_warning() -> None:
    config = ios("interface Tunnel1\n tunnel source Loopback9\n tunnel destination 10.0.0.2\n")
    assert config.tunnels == ()
    assert config.warnings[0].startswith("r.cfg:2: Tunnel1: tunnel source interface Loopback9")


def test_ios_identical_duplicate_tunnel_warns() -> None:
    config = ios(TUNNEL + " keepalive 5 4\n" + TUNNEL + " keepalive 5 4\n")
    assert len(config.tunnels) == 1
    assert config.warnings[0].startswith("r.cfg:5: Tunnel1: duplicate of Tunnel1 at r.cfg:1")


def test_ios_warnings_are_file_line_single_lines() -> None:
    config = load_config(DATA / "running_config.txt")
    assert all(WARNING_LINE.match(w) and len(w.splitlines()) == 1 for w in config.warnings)


# --------------------------------------------------------------------------------------------
# IOS: errors
# --------------------------------------------------------------------------------------------


def test_ios_retries_out_of_range() -> None:
    text = TUNNEL + " keepalive 10 300\n"
    assert error_of(parse_ios, text, "router-a.cfg") == (
        "router-a.cfg:4: keepalive retries 300 out of range 1-255"
    )


def test_ios_retries_zero() -> None:
    assert error_of(parse_ios, TUNNEL + " keepalive 10 0\n", "r.cfg") == (
        "r.cfg:4: keepalive retries 0 out of range 1-255"
    )


def test_ios_period_out_of_range() -> None:
    assert error_of(parse_ios, TUNNEL + " keepalive 32768\n", "r.cfg") == (
        "r.cfg:4: keepalive period 32768 out of range 0-32767"
    )


def test_ios_period_not_numeric() -> None:
    assert error_of(parse_ios, TUNNEL + " keepalive ten\n", "r.cfg") == (
        "r.cfg:4: keepalive period 'ten' is not an integer 0-32767"
    )


def test_ios_keepalive_extra_argument() -> None:
    assert error_of(parse_ios, TUNNEL + " keepalive 5 4 9\n", "r.cfg") == (
        "r.cfg:4: keepalive: unexpected argument '9'"
    )


def test_ios_tunnel_key_out_of_range() -> None:
    assert error_of(parse_ios, TUNNEL + " tunnel key 4294967296\n", "r.cfg") == (
        "r.cfg:4: tunnel key 4294967296 out of range 0-4294967295"
    )


def test_ios_tunnel_key_not_numeric() -> None:
    assert error_of(parse_ios, TUNNEL + " tunnel key abc\n", "r.cfg").startswith(
        "r.cfg:4: tunnel key 'abc' is not an integer"
    )


def test_ios_conflicting_duplicate_tunnel() -> None:
    text = TUNNEL + " keepalive 5 4\n" + TUNNEL + " keepalive 6 4\n"
    assert error_of(parse_ios, text, "r.cfg").startswith("r.cfg:5: Tunnel1: same source")


# --------------------------------------------------------------------------------------------
# TOML
# --------------------------------------------------------------------------------------------


def test_toml_example_file() -> None:
    path = DATA / "tunnels.toml"
    config = load_config(path)
    assert config.format == "toml"
    assert (config.default_period, config.default_retries) == (10.0, 3)
    assert config.tunnels[0] == TunnelConfig(
        "128.8.8.8", "129.9.9.9", 42, True, 5.0, 4, "tunnel[1]", f"{path}:6"
    )
    assert config.warnings == ()


def test_toml_keepalive_false() -> None:
    tunnel = load_config(DATA / "tunnels.toml").tunnels[1]
    assert (tunnel.keepalive, tunnel.period, tunnel.retries) == (False, None, None)


def test_toml_float_period_and_ipv6_normalised() -> None:
    tunnel = load_config(DATA / "tunnels.toml").tunnels[2]
    assert (tunnel.source, tunnel.destination, tunnel.period) == ("2001:db8::1", "2001:db8::2", 2.5)
    assert (tunnel.key, tunnel.retries, tunnel.keepalive) == (None, None, True)


def test_toml_period_zero_means_keepalive_off() -> None:
    config = parse_toml('[[tunnel]]\nsource="10.0.0.1"\ndestination="10.0.0.2"\nperiod=0\n')
    assert (only(config).keepalive, only(config).period) == (False, 0.0)


def test_toml_defaults_period_zero_turns_keepalive_off() -> None:
    text = '[defaults]\nperiod=0\n[[tunnel]]\nsource="10.0.0.1"\ndestination="10.0.0.2"\n'
    assert (only(parse_toml(text)).keepalive, only(parse_toml(text)).period) == (False, None)


T = '[[tunnel]]\nsource = "10.0.0.1"\ndestination = "10.0.0.2"\n'


def test_toml_unknown_tunnel_key_names_key_and_table() -> None:
    message = error_of(parse_toml, T + "perod = 5\n", "k.toml")
    assert message.startswith("k.toml:4: unknown key 'perod' in [[tunnel]] tunnel[1]")


def test_toml_unknown_sub_table_in_tunnel() -> None:
    message = error_of(parse_toml, T + "[tunnel.extra]\na = 1\n", "k.toml")
    assert message.startswith("k.toml:4: unknown key 'extra' in [[tunnel]] tunnel[1]")


def test_toml_unknown_defaults_key() -> None:
    message = error_of(parse_toml, "[defaults]\nretry = 3\n", "k.toml")
    assert message.startswith("k.toml:2: unknown key 'retry' in [defaults]")


def test_toml_unknown_top_level_key() -> None:
    message = error_of(parse_toml, "version = 1\n" + T, "k.toml")
    assert message.startswith("k.toml:1: unknown key 'version' at top level")


def test_toml_missing_destination() -> None:
    message = error_of(parse_toml, '\n[[tunnel]]\nsource = "10.0.0.1"\n', "k.toml")
    assert message == "k.toml:2: tunnel[1]: missing 'destination'"


def test_toml_bad_address() -> None:
    text = '[[tunnel]]\nsource = "10.0.0.300"\ndestination = "10.0.0.2"\n'
    assert error_of(parse_toml, text, "k.toml") == (
        "k.toml:2: tunnel[1]: source '10.0.0.300' is not an IPv4 or IPv6 address"
    )


def test_toml_mixed_address_families() -> None:
    text = '[[tunnel]]\nsource = "10.0.0.1"\ndestination = "2001:db8::2"\n'
    assert "different address families" in error_of(parse_toml, text, "k.toml")


def test_toml_negative_period() -> None:
    assert error_of(parse_toml, T + "period = -1\n", "k.toml") == (
        "k.toml:4: tunnel[1]: period -1 out of range 0-32767"
    )


def test_toml_period_too_large() -> None:
    assert error_of(parse_toml, T + "period = 32767.5\n", "k.toml") == (
        "k.toml:4: tunnel[1]: period 32767.5 out of range 0-32767"
    )


def test_toml_retries_zero() -> None:
    assert error_of(parse_toml, T + "retries = 0\n", "k.toml") == (
        "k.toml:4: tunnel[1]: retries 0 out of range 1-255"
    )


def test_toml_retries_float() -> None:
    assert error_of(parse_toml, T + "retries = 2.5\n", "k.toml") == (
        "k.toml:4: tunnel[1]: retries must be an integer 1-255, got 2.5"
    )


def test_toml_defaults_retries_out_of_range() -> None:
    assert error_of(parse_toml, "[defaults]\nperiod = 5\nretries = 256\n", "k.toml") == (
        "k.toml:3: defaults: retries 256 out of range 1-255"
    )


def test_toml_key_out_of_range() -> None:
    assert error_of(parse_toml, T + "key = 4294967296\n", "k.toml") == (
        "k.toml:4: tunnel[1]: key 4294967296 out of range 0-4294967295"
    )


def test_toml_key_boolean_rejected() -> None:
    assert error_of(parse_toml, T + "key = true\n", "k.toml") == (
        "k.toml:4: tunnel[1]: key must be an integer 0-4294967295, got True"
    )


def test_toml_keepalive_not_boolean() -> None:
    assert error_of(parse_toml, T + 'keepalive = "yes"\n', "k.toml") == (
        "k.toml:4: tunnel[1]: keepalive must be true or false, got 'yes'"
    )


def test_toml_keepalive_true_with_period_zero() -> None:
    message = error_of(parse_toml, T + "period = 0\nkeepalive = true\n", "k.toml")
    assert message.startswith("k.toml:5: tunnel[1]: keepalive = true contradicts period = 0")


def test_toml_duplicate_entries() -> None:
    text = T + "key = 1\n" + T + "key = 1\n"
    assert error_of(parse_toml, text, "k.toml") == (
        "k.toml:5: tunnel[2]: duplicate of tunnel[1] at k.toml:1 "
        "(source 10.0.0.1, destination 10.0.0.2, key 1)"
    )


def test_toml_same_endpoints_different_keys_allowed() -> None:
    config = parse_toml(T + "key = 1\n" + T + "key = 2\n")
    assert [t.key for t in config.tunnels] == [1, 2]


def test_toml_tunnel_must_be_array_of_tables() -> None:
    message = error_of(parse_toml, '[tunnel]\nsource = "10.0.0.1"\n', "k.toml")
    assert message == "k.toml:1: 'tunnel' must be an array of tables ([[tunnel]])"


def test_toml_syntax_error() -> None:
    assert error_of(parse_toml, T + "period = \n", "k.toml") == (
        "k.toml:4: TOML syntax error: Invalid value (at line 4, column 10)"
    )


# --------------------------------------------------------------------------------------------
# lookup
# --------------------------------------------------------------------------------------------


def test_lookup_exact_key() -> None:
    config = load_config(DATA / "tunnels.toml")
    assert config.lookup("128.8.8.8", "129.9.9.9", 42) is config.tunnels[0]


def test_lookup_key_mismatch_returns_none() -> None:
    config = load_config(DATA / "tunnels.toml")
    assert config.lookup("128.8.8.8", "129.9.9.9", None) is None
    assert config.lookup("128.8.8.8", "129.9.9.9", 43) is None


def test_lookup_unkeyed_entry_only_matches_no_key() -> None:
    config = load_config(DATA / "tunnels.toml")
    assert config.lookup("2001:db8::1", "2001:db8::2", 7) is None
    assert config.lookup("2001:db8::1", "2001:db8::2", None) is config.tunnels[2]


def test_lookup_normalises_addresses() -> None:
    config = load_config(DATA / "tunnels.toml")
    assert config.lookup("2001:DB8:0::1", "2001:DB8::2", None) is config.tunnels[2]


def test_lookup_is_directional() -> None:
    config = load_config(DATA / "technote_back_to_back.cfg")
    assert config.lookup("129.9.9.9", "128.8.8.8", None) is config.tunnels[1]
    assert config.lookup("129.9.9.9", "129.9.9.9", None) is None


def test_lookup_invalid_address_returns_none() -> None:
    assert load_config(DATA / "tunnels.toml").lookup("not-an-ip", "129.9.9.9", 42) is None


# --------------------------------------------------------------------------------------------
# load_config: detection and file errors
# --------------------------------------------------------------------------------------------


def test_detects_toml_despite_cfg_extension() -> None:
    assert load_config(DATA / "tunnels_toml_with_cfg_extension.cfg").format == "toml"


def test_detects_ios_despite_toml_extension() -> None:
    config = load_config(DATA / "ios_with_toml_extension.toml")
    assert (config.format, only(config).period) == ("ios", 10.0)


def test_neither_format(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello world\n")
    assert error_of(load_config, path) == (
        f"{path}: neither TOML ([[tunnel]] tables) nor Cisco IOS configuration "
        "(interface Tunnel blocks)"
    )


def test_load_reports_toml_syntax_error_with_line(tmp_path: Path) -> None:
    path = tmp_path / "k.conf"
    path.write_text("[[tunnel]]\nsource = 10.0.0.1\n")
    assert error_of(load_config, path).startswith(f"{path}:2: TOML syntax error: ")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"
    assert error_of(load_config, path) == f"{path}: cannot read: no such file"


def test_directory(tmp_path: Path) -> None:
    assert error_of(load_config, tmp_path) == f"{tmp_path}: cannot read: is a directory"


def test_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.toml"
    path.write_text(T)

    def denied(*_args: object, **_kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("analyzer.config.os.open", denied)  # as root, chmod would not deny
    assert error_of(load_config, path) == f"{path}: cannot read: permission denied"


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.cfg"
    path.write_bytes(b"interface Tunnel0\n description caf\xe9\n")
    assert error_of(load_config, path) == f"{path}:2: not UTF-8 text (invalid byte 0xe9)"


def test_crlf_and_bom_accepted(tmp_path: Path) -> None:
    path = tmp_path / "windows.cfg"
    text = "\ufeff" + TUNNEL.replace("\n", "\r\n") + " keepalive 5 4\r\n"
    path.write_bytes(text.encode("utf-8"))
    tunnel = only(load_config(path))
    assert (tunnel.source, tunnel.period, tunnel.retries) == ("10.0.0.1", 5.0, 4)


def test_an_entry_kept_from_applying_by_its_key_says_so(tmp_path: Path) -> None:
    """captures/outage.pcap's tunnel has no key; an entry for its addresses with key 42
    matches nothing. The originator it names gets a note; the period comes from the
    file's [defaults] (10 s), not from the entry (5 s)."""
    import json

    from analyzer.cli import main

    config = tmp_path / "keyed.toml"
    config.write_text(
        "[defaults]\nperiod = 10\nretries = 3\n\n"
        '[[tunnel]]\nsource = "192.0.2.1"\ndestination = "198.51.100.1"\nkey = 42\n'
        "period = 5\nretries = 4\n"
    )
    out = tmp_path / "out.json"
    capture = Path(__file__).resolve().parent.parent / "captures" / "outage.pcap"
    assert main(["analyze", str(capture), "--config", str(config), "--format", "json",
                 "-o", str(out)]) == 0  # fmt: skip
    originators = {
        o["address"]: o for o in json.loads(out.read_text())["tunnels"][0]["originators"]
    }
    a, b = originators["192.0.2.1"], originators["198.51.100.1"]
    assert (a["period"], a["period_source"]) == (10.0, "config")
    assert [n for n in a["notes"] if "not applied" in n] == [
        f"{config}:5: tunnel[1] is configured for 192.0.2.1 → 198.51.100.1 with key 42, "
        "but this tunnel has no key: the entry is not applied"
    ]
    assert not any("not applied" in n for n in b["notes"])
