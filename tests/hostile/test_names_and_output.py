"""Names that carry escape sequences, rich markup or bytes that are not UTF-8, and output
that cannot be written: never a traceback, never a raw escape sequence on the terminal."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.report.escape import printable, strict_json

DATA = Path(__file__).parent.parent / "data" / "hostile"
KA = DATA / "ka.pcap"  # a well-formed capture of keepalives (15 of them, one tunnel)
ESC = "\x1b"


def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    options: dict[str, object] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kw}
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [sys.executable, "-m", "analyzer", *args],
        text=True,
        errors="surrogateescape",
        timeout=120,
        check=False,
        **options,
    )


def test_printable_escapes_like_ls_b() -> None:
    assert printable("Tunnel0\x1b]0;PWNED\x07\x1b[31m") == "Tunnel0\\033]0;PWNED\\a\\033[31m"
    assert printable(os.fsdecode(b"\xe9t\xe9.pcap")) == "\\351t\\351.pcap"
    assert printable("a\nb\tc\x7f") == "a\\nb\\tc\\177"
    assert printable("evil\u202etxt.pcap") == "evil\\u202etxt.pcap"  # right-to-left override
    assert printable("wan [1] ↔ é.pcap") == "wan [1] ↔ é.pcap"  # printable: unchanged


@pytest.mark.parametrize("fmt", ["text", "json", "csv"])
def test_a_file_name_with_escapes_and_markup_is_shown_escaped(tmp_path: Path, fmt: str) -> None:
    folder = tmp_path / "x["
    folder.mkdir()
    name = folder / "]y\x1b]0;PWNED\x07.pcap"  # markup "[/]" and an OSC sequence
    shutil.copy(KA, name)
    result = run("analyze", str(name), "--format", fmt)
    assert result.returncode == 0, result.stderr
    assert ESC not in result.stdout and ESC not in result.stderr
    if fmt == "text":
        assert "x[/]y\\033]0;PWNED\\a.pcap: 35 packets" in result.stdout


def test_a_file_name_that_is_not_utf8_is_read_and_shown_as_octal(tmp_path: Path) -> None:
    name = os.path.join(os.fsencode(tmp_path), b"\xe9t\xe9.pcap")  # Latin-1 "été.pcap"
    shutil.copy(os.fsencode(KA), name)
    result = run("analyze", os.fsdecode(name))
    assert result.returncode == 0, result.stderr
    assert f"{tmp_path}/\\351t\\351.pcap: 35 packets" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        (os.fsdecode(b"\xe9t\xe9.pcap"), "\\351t\\351.pcap"),  # bytes not UTF-8: as printable()
        ("wan \U0001f600.pcap", "wan \U0001f600.pcap"),  # a surrogate pair: kept
        ("C:\\udce9", "C:\\udce9"),  # a backslash, then text that looks like an escape
        ("half \ud83d.pcap", "half \ufffd.pcap"),  # a lone high surrogate
        ("plain.pcap", "plain.pcap"),
    ],
)
def test_json_text_never_holds_a_lone_surrogate(value: str, decoded: str) -> None:
    text = strict_json(json.dumps({"file": value}))
    document = json.loads(text)
    assert document == {"file": decoded}
    json.dumps(document, ensure_ascii=False).encode("utf-8")  # strict: no lone surrogate


def test_a_file_name_that_is_not_utf8_is_valid_utf8_in_json(tmp_path: Path) -> None:
    name = os.path.join(os.fsencode(tmp_path), b"\xe9t\xe9.pcap")  # Latin-1 "été.pcap"
    shutil.copy(os.fsencode(KA), name)
    result = run("analyze", os.fsdecode(name), "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["source"]["files"] == [f"{tmp_path}/\\351t\\351.pcap"]
    json.dumps(document, ensure_ascii=False).encode("utf-8")


def test_an_interface_name_with_markup_is_printed_as_written() -> None:
    result = run("analyze", str(KA), "--config", str(DATA / "markup.cfg"))
    assert result.returncode == 0, result.stderr
    # The note carries the config's path, so where the 120-column report wraps it depends
    # on how deep the checkout is: compare with the line breaks taken out.
    assert "configuration has no keepalive on Tunnel0[/]" in " ".join(result.stdout.split())


def test_an_interface_name_with_escapes_never_reaches_the_terminal_raw() -> None:
    # esc_name.cfg: `interface Tunnel0 ESC ] 0 ; PWNED BEL ESC [ 31 m`, no keepalive
    result = run("analyze", str(KA), "--config", str(DATA / "esc_name.cfg"))
    assert result.returncode == 0, result.stderr
    assert ESC not in result.stdout
    assert "Tunnel0\\033]0;pwned\\a\\033[31m" in result.stdout


def test_a_config_warning_with_escapes_is_escaped_on_stderr() -> None:
    # esc_warning.cfg: `tunnel source Eth ESC [31m RED ESC ]0;PWNED BEL`, an unknown interface
    result = run("analyze", str(KA), "--config", str(DATA / "esc_warning.cfg"))
    assert ESC not in result.stderr
    assert "interface Eth\\033[31mRED\\033]0;PWNED\\a not found" in result.stderr


def test_an_error_naming_a_file_escapes_it() -> None:
    result = run("analyze", "/nonexistent/\x1b[2J.pcap")
    assert result.returncode == 2
    assert result.stderr == "gre-keepalive: error: /nonexistent/\\033[2J.pcap: no such file\n"


@pytest.mark.parametrize(
    "args",
    [
        ("analyze", str(KA)),
        ("analyze", str(KA), "--format", "json"),
        ("analyze", str(KA), "--format", "csv"),
        ("export-lua",),
        ("--help",),  # argparse drops a failed write of the help: it ended 0, showing nothing
        ("tui", "--help"),
    ],
)
def test_a_full_device_is_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    with open("/dev/full", "w") as full:
        result = run(*args, stdout=full)
    assert result.returncode == 2
    assert (
        result.stderr == "gre-keepalive: error: cannot write the output (No space left on device)\n"
    )


@pytest.mark.parametrize("args", [("analyze", str(KA)), ("export-lua",)])
def test_a_closed_stdout_is_one_line_and_exit_2(args: tuple[str, ...]) -> None:
    result = run(*args, stdout=None, preexec_fn=lambda: os.close(1))
    assert result.returncode == 2
    assert result.stderr == "gre-keepalive: error: cannot write the output (stdout is closed)\n"


def test_simulate_to_a_closed_stdout_is_one_line_and_exit_2() -> None:
    # sys.stdout is None when started with fd 1 closed: it had no .buffer (AttributeError)
    scenario = str(DATA / "healthy.toml")
    result = run("simulate", scenario, "-o", "-", stdout=None, preexec_fn=lambda: os.close(1))
    assert result.returncode == 2
    assert (
        result.stderr == "gre-keepalive simulate: error: cannot write <stdout>: stdout is closed\n"
    )


@pytest.mark.parametrize(
    "args", [("analyze", str(KA)), ("simulate", str(DATA / "healthy.toml"), "-o", "-")]
)
def test_a_reader_that_goes_away_ends_quietly_with_141(args: tuple[str, ...]) -> None:
    # The reader is gone before the first write (as after `| head -c 0`): a reader that
    # reads one byte and then closes races with a report small enough to fit in the pipe.
    reader, writer = os.pipe()
    os.close(reader)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "analyzer", *args],
            stdout=writer,
            stderr=subprocess.PIPE,
            timeout=120,
            check=False,
        )
    finally:
        os.close(writer)
    assert result.returncode == 141  # 128 + SIGPIPE, as a shell reports `cat`
    assert result.stderr == b""


def test_a_reader_that_quits_part_way_through_the_plugin_ends_141() -> None:
    # The plugin (86 KB) is more than a pipe holds (64 KB): its one write is still blocked
    # when the reader, having read a byte, closes. The kernel returns it short, and the
    # rest must not be dropped silently with status 0.
    reader, writer = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "analyzer", "export-lua"],
            stdout=writer,
            stderr=subprocess.PIPE,
        )
        os.close(writer)
        writer = -1
        assert os.read(reader, 1) == b"-"
        os.close(reader)
        reader = -1
        _output, errors = process.communicate(timeout=120)
        assert (process.returncode, errors) == (141, b"")
    finally:
        for end in (reader, writer):
            if end >= 0:
                os.close(end)


def test_every_subcommand_s_errors_reach_stderr_escaped() -> None:
    # watch and tui write their own errors; the interface or file name is escaped all the same
    watch = run("watch", "eth\x1b]0;x\x07", "--format", "jsonl", "--duration", "1")
    tui = run("tui", "/nonexistent/\x1b[2J.pcap", stdin=subprocess.DEVNULL)
    for result in (watch, tui):
        assert result.returncode == 2
        assert ESC not in result.stderr and "\x07" not in result.stderr
    assert "eth\\033]0;x\\a" in watch.stderr


def test_an_interface_name_that_is_not_utf8_is_refused_in_one_line() -> None:
    # bytes e9 74 e9: "été" in Latin-1, not UTF-8; libpcap's binding takes names as str
    result = run("watch", os.fsdecode(b"\xe9t\xe9"), "--format", "jsonl", "--duration", "1")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (
        result.stderr
        == "gre-keepalive watch: error: cannot capture on \\351t\\351: the name is not UTF-8\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("watch", "a\nb", "--format", "jsonl", "--duration", "1"),
        (
            "probe",
            "--write",
            "/nonexistent/a\nb/x.pcap",
            "--local",
            "192.0.2.2",
            "--remote",
            "192.0.2.1",
            "--count",
            "1",
        ),
    ],
)
def test_a_newline_in_a_name_keeps_the_error_on_one_line(args: tuple[str, ...]) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "a\\nb" in result.stderr


def test_tui_is_given_the_capture_name_escaped(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the TUI shows the name in its title and status line: raw, ESC ] 0 ; … BEL retitled
    # the terminal window
    import analyzer.tui.app as app_module

    shown: list[str] = []

    def fake_run_capture(_loader: object, name: str, **_kw: object) -> int:
        shown.append(name)
        return 0

    monkeypatch.setattr(app_module, "run_capture", fake_run_capture)
    from analyzer.cli import main

    path = tmp_path / "k\x1b]0;x\x07.pcap"
    shutil.copy(KA, path)
    assert main(["tui", str(path)]) == 0
    assert shown == [f"{tmp_path}/k\\033]0;x\\a.pcap"]


async def test_tui_export_and_prompt_screens_take_a_name_with_markup_as_text(
    tmp_path: Path,
) -> None:
    # "[/]" in a capture's name closed no tag: MarkupError brought the TUI down
    from analyzer.keepalive.analysis import Settings
    from analyzer.pipeline.analyze import analyze_frames
    from analyzer.read.capture import open_capture
    from analyzer.tui.app import CaptureApp

    path = tmp_path / "[/]x[/red].pcap"  # folders "[" and "]x[", file "red].pcap"
    path.parent.mkdir(parents=True)
    shutil.copy(KA, path)

    def load(_progress: object) -> object:
        with open_capture(str(path)) as reader:
            return analyze_frames(reader, Settings(), files=[str(path)])

    app = CaptureApp(load, name=str(path))  # type: ignore[arg-type]
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.ready.is_set():
            await pilot.pause(0.05)
        for key in ("e", "escape", "colon", "escape"):
            await pilot.press(key)
            await pilot.pause(0.02)
    assert app.return_code in (None, 0)


def test_a_truth_file_on_a_full_device_is_named_in_the_error(tmp_path: Path) -> None:
    # the capture was written; the truth's failed write had no file name: "cannot write o.pcap"
    scenario = str(DATA / "healthy.toml")
    result = run("simulate", scenario, "-o", str(tmp_path / "o.pcap"), "--truth", "/dev/full")
    assert result.returncode == 2
    assert result.stderr == (
        "gre-keepalive simulate: error: cannot write /dev/full: No space left on device\n"
    )


@pytest.mark.parametrize("color", ["always", "never"])
def test_two_captures_named_with_markup_and_escapes_are_quoted_escaped(
    tmp_path: Path, color: str
) -> None:
    # The tunnel line quotes both file names ("two captures: A at …, B at …"); in colour
    # "[/b]" in a name was a rich MarkupError traceback
    capture = tmp_path / "r\x1b]0;x\x07[/b]"  # a directory "r<OSC>[" holding "b]"
    capture.parent.mkdir()
    shutil.copy(KA, capture)
    other = tmp_path / "k.pcap"
    shutil.copy(KA, other)
    result = run("analyze", "--color", color, str(capture), str(other))
    assert result.returncode == 0, result.stderr
    assert "r\\033]0;x\\a[/b] at " in result.stdout
    assert ESC + "]" not in result.stdout
