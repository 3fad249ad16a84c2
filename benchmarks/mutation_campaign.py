"""A mutation campaign against `gre-keepalive analyze`, on demand.

Not a test (it runs for as long as you let it): it mutates the repository's captures —
corrupted header and record fields, cuts, random byte mutants, splices, and pcapng files
assembled from random block sequences — and runs every mutant through `analyze` with both
readers (libpcap's fast path and `--reader python`, JSON) and the text report, then prints
counts: runs, exit statuses, tracebacks (grouped by exception and place), mutants on which
the two readers disagree (exit status, or JSON other than the warnings), crashes of the
process (a signal) and timeouts. Exit statuses other than 0 and 2 are findings too.

Mutants run in batches in child processes (memory capped, so a header that asks for
terabytes is a MemoryError, not a swapping machine); a child that dies or hangs costs its
current mutant, which is counted and, with --keep DIR, saved with every other finding.

    python benchmarks/mutation_campaign.py [--count N] [--seconds S] [--seed N]
                                           [--keep DIR] [CAPTURE ...]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import random
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = ("captures", "tests/data/real", "tests/data/hostile")
BATCH = 25  # mutants per child process
TIMEOUT = 60.0  # seconds one mutant may take (all its runs) before it counts as a hang
MEMORY_LIMIT = 2 << 30  # address space of a child: bytes

# -------------------------------------------------------------------------------- mutants

PCAP_MAGICS = (0xA1B2C3D4, 0xA1B23C4D, 0xD4C3B2A1, 0x4D3CB2A1, 0xA1B2CD34, 0)
INTERESTING_32 = (0, 1, 0x7F, 0x80, 0xFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)
LINKTYPES = (0, 1, 101, 113, 276, 228, 229, 12, 14, 108, 105, 127, 0xFFFF, 0xFFFFFFFF)


def _pcap_records(data: bytes) -> list[int]:
    """Offsets of the record headers of a classic pcap (as far as they parse)."""
    if len(data) < 24:
        return []
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    offsets: list[int] = []
    at = 24
    while at + 16 <= len(data) and len(offsets) < 100_000:
        offsets.append(at)
        (length,) = struct.unpack_from(order + "I", data, at + 8)
        at += 16 + length
    return offsets


def _pcapng_blocks(data: bytes) -> list[tuple[int, int]]:
    """(offset, type) of the blocks of a pcapng file (as far as they parse)."""
    if len(data) < 12 or data[:4] != b"\x0a\x0d\x0d\x0a":
        return []
    order = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    blocks: list[tuple[int, int]] = []
    at = 0
    while at + 12 <= len(data) and len(blocks) < 100_000:
        kind, length = struct.unpack_from(order + "II", data, at)
        blocks.append((at, kind))
        if length < 12 or length % 4:
            break
        at += length
    return blocks


def corrupt_fields(data: bytes, rng: random.Random) -> bytes:
    """Set one header or record field (pcap) or block field (pcapng) to a boundary value."""
    out = bytearray(data)
    value = rng.choice(INTERESTING_32) if rng.random() < 0.7 else rng.getrandbits(32)
    blocks = _pcapng_blocks(data)
    if blocks:
        at, kind = rng.choice(blocks)
        # a field of the block: length, and in an IDB link type/snaplen, in an EPB the
        # interface, timestamps and lengths; or any word of the body (options)
        end = at + struct.unpack_from("<I", data, at + 4)[0] if kind else len(data)
        words = list(range(at + 4, min(end, len(data)) - 3, 4)) or [at]
        position = rng.choice(words[:8] if rng.random() < 0.7 else words)
    else:
        records = _pcap_records(data)
        if records and rng.random() < 0.7:
            position = rng.choice(records) + 4 * rng.randrange(4)  # sec, frac, incl, orig
        else:
            position = rng.choice((0, 4, 8, 12, 16, 20))  # magic, version, zone, sigfigs, …
            if position == 0:
                value = rng.choice(PCAP_MAGICS)
            elif position == 20:
                value = rng.choice(LINKTYPES)
    if position + 4 <= len(out):
        out[position : position + 4] = struct.pack("<I", value & 0xFFFFFFFF)
    return bytes(out)


def cut(data: bytes, rng: random.Random) -> bytes:
    """The file cut short at a random offset (a record or block boundary ± a few bytes
    half the time)."""
    boundaries = [o for o, _ in _pcapng_blocks(data)] or _pcap_records(data)
    if boundaries and rng.random() < 0.5:
        return data[: max(0, rng.choice(boundaries) + rng.randint(-4, 20))]
    return data[: rng.randrange(len(data) + 1)]


def random_bytes(data: bytes, rng: random.Random) -> bytes:
    """Bit flips, byte overwrites, inserted or deleted runs: a few of them."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        if not out:
            out += rng.randbytes(rng.randint(1, 64))
            continue
        at = rng.randrange(len(out))
        choice = rng.random()
        if choice < 0.4:
            out[at] ^= 1 << rng.randrange(8)
        elif choice < 0.7:
            out[at] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.getrandbits(8)))
        elif choice < 0.85:
            out[at:at] = rng.randbytes(rng.randint(1, 32))
        else:
            del out[at : at + rng.randint(1, 32)]
    return bytes(out)


def splice(data: bytes, other: bytes, rng: random.Random) -> bytes:
    """The head of one capture and the tail of another."""
    return data[: rng.randrange(len(data) + 1)] + other[rng.randrange(len(other) + 1) :]


def _block(kind: int, body: bytes, order: str = "<") -> bytes:
    body += b"\x00" * (-len(body) % 4)
    length = 12 + len(body)
    return struct.pack(order + "II", kind, length) + body + struct.pack(order + "I", length)


def _option(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


def pcapng_sequence(frames: list[bytes], rng: random.Random) -> bytes:
    """A pcapng file of random blocks: section headers, interfaces with random clocks and
    link types, enhanced, simple and obsolete packet blocks with random timestamps,
    statistics, name resolution and unknown blocks, in a random order; each section in a
    byte order of its own."""
    e = rng.choice("<>")
    out = [_block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e)]
    interfaces = 0
    for _ in range(rng.randint(1, 40)):
        kind = rng.choice(("idb", "epb", "epb", "epb", "spb", "opb", "isb", "nrb", "shb", "?"))
        frame = rng.choice(frames) if frames else rng.randbytes(60)
        stamp = rng.choice((0, 1, 1 << 31, 1 << 32, 1 << 63, (1 << 64) - 1, rng.getrandbits(64)))
        if kind == "idb":
            options = b""
            if rng.random() < 0.5:
                options += _option(9, bytes([rng.choice((0, 3, 6, 9, 0x80 | 10, 0x80, 127))]), e)
            if rng.random() < 0.3:
                options += _option(
                    14, struct.pack(e + "q", rng.choice((0, -1, 1 << 62, -(10**12)))), e
                )
            if options:
                options += _option(0, b"", e)
            link = rng.choice((1, 1, 101, 113, 276, rng.getrandbits(16)))
            snaplen = rng.choice((0, 1, 40, 65535, 262144))
            out.append(_block(1, struct.pack(e + "HHI", link, 0, snaplen) + options, e))
            interfaces += 1
        elif kind == "epb":
            interface = rng.randrange(interfaces + 2)
            captured = len(frame) if rng.random() < 0.9 else rng.choice((0, len(frame) + 100))
            body = struct.pack(
                e + "IIIII", interface, stamp >> 32, stamp & 0xFFFFFFFF, captured, len(frame)
            )
            out.append(_block(6, body + frame, e))
        elif kind == "spb":
            out.append(_block(3, struct.pack(e + "I", len(frame)) + frame, e))
        elif kind == "opb":
            body = struct.pack(e + "HHII", 0, 0, stamp >> 32, stamp & 0xFFFFFFFF)
            out.append(_block(2, body + struct.pack(e + "II", len(frame), len(frame)) + frame, e))
        elif kind == "isb":
            out.append(_block(5, struct.pack(e + "III", 0, stamp >> 32, stamp & 0xFFFFFFFF), e))
        elif kind == "nrb":
            out.append(_block(4, struct.pack(e + "HH", 0, 0), e))
        elif kind == "shb":
            e = rng.choice("<>")  # a new section: its interfaces start again from 0
            out.append(_block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1), e))
            interfaces = 0
        else:
            out.append(_block(rng.choice((7, 0xA, 0xBAD, 0x80000001)), rng.randbytes(8), e))
    return b"".join(out)


def _frames_of(data: bytes) -> list[bytes]:
    """Up to 50 frames of a classic pcap, to fill pcapng sequences with."""
    frames = []
    order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    for at in _pcap_records(data)[:50]:
        (length,) = struct.unpack_from(order + "I", data, at + 8)
        frames.append(data[at + 16 : at + 16 + min(length, 4096)])
    return [f for f in frames if f]


MUTATORS = ("fields", "cut", "bytes", "splice", "pcapng-blocks")


def mutants(corpus: list[Path], rng: random.Random) -> Iterator[tuple[str, str, bytes]]:
    """Endless (mutator, source, bytes) triples."""
    contents = {path.name: path.read_bytes() for path in corpus}
    names = sorted(contents)
    frames = [f for data in contents.values() for f in _frames_of(data)]
    while True:
        kind = rng.choice(MUTATORS)
        name = rng.choice(names)
        data = contents[name]
        if kind == "fields":
            yield kind, name, corrupt_fields(data, rng)
        elif kind == "cut":
            yield kind, name, cut(data, rng)
        elif kind == "bytes":
            yield kind, name, random_bytes(data, rng)
        elif kind == "splice":
            yield kind, name, splice(data, contents[rng.choice(names)], rng)
        else:
            yield kind, "-", pcapng_sequence(rng.sample(frames, min(len(frames), 30)), rng)


# ---------------------------------------------------------------------- the child's side

RUNS = (  # (name, extra arguments): each mutant goes through all of them
    ("libpcap-json", ("--format", "json")),
    ("python-json", ("--format", "json", "--reader", "python")),
    ("text", ("--format", "text")),
)


def _run_one(path: str, out: str, extra: tuple[str, ...]) -> dict[str, object]:
    from analyzer.cli import main

    stderr = io.StringIO()
    traceback_text = None
    try:
        with contextlib.redirect_stderr(stderr):
            status = main(["analyze", path, "-o", out, *extra])
    except SystemExit as exc:  # argparse
        status = exc.code if isinstance(exc.code, int) else 2
    except BaseException as exc:
        import traceback

        where = traceback.extract_tb(exc.__traceback__)[-1]
        traceback_text = (
            f"{type(exc).__name__} at {Path(where.filename).name}:{where.lineno} ({where.name})"
        )
        status = 1
    document = None
    if status == 0 and extra[:2] == ("--format", "json"):
        with contextlib.suppress(OSError, ValueError):
            document = json.loads(Path(out).read_text())
            document["source"].pop("warnings", None)  # the readers may word them apart
    return {
        "status": status,
        "traceback": traceback_text,
        "stderr_traceback": "Traceback" in stderr.getvalue(),
        "document": document,
    }


def child(paths: list[str]) -> None:
    """Run the mutants named on the command line; one JSON line per mutant on stdout."""
    with tempfile.TemporaryDirectory() as scratch:
        out = os.path.join(scratch, "out")
        for path in paths:
            print(json.dumps({"start": path}), flush=True)
            results = {name: _run_one(path, out, extra) for name, extra in RUNS}
            print(json.dumps({"done": path, "results": results}), flush=True)


# --------------------------------------------------------------------- the parent's side


@dataclass
class Tally:
    """What the campaign found."""

    mutants: int = 0
    runs: int = 0
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    tracebacks: collections.Counter[str] = field(default_factory=collections.Counter)
    disagreements: collections.Counter[str] = field(default_factory=collections.Counter)
    crashes: int = 0
    timeouts: int = 0
    by_mutator: collections.Counter[str] = field(default_factory=collections.Counter)
    findings: list[tuple[str, str]] = field(default_factory=list)  # (why, mutant path)

    def add(self, results: dict[str, dict[str, object]], path: str) -> None:
        """Count one mutant's runs."""
        self.mutants += 1
        for name, result in results.items():
            self.runs += 1
            status = result["status"]
            self.statuses[f"{name} {status}"] += 1
            if result["traceback"] or result["stderr_traceback"]:
                self.tracebacks[str(result["traceback"] or f"{name}: Traceback on stderr")] += 1
                self.findings.append(("traceback", path))
            elif status not in (0, 2):
                self.findings.append((f"exit {status}", path))
        fast, slow = results["libpcap-json"], results["python-json"]
        if fast["status"] != slow["status"]:
            self.disagreements[f"exit {fast['status']} vs {slow['status']}"] += 1
            self.findings.append(("readers disagree", path))
        elif fast["document"] != slow["document"]:
            self.disagreements["different JSON"] += 1
            self.findings.append(("readers disagree", path))

    def report(self) -> str:
        """The counts, for a person."""
        lines = [
            f"mutants: {self.mutants} ("
            + ", ".join(f"{kind} {count}" for kind, count in sorted(self.by_mutator.items()))
            + ")",
            f"runs: {self.runs}",
            "exit statuses: "
            + ", ".join(f"{key}: {count}" for key, count in sorted(self.statuses.items())),
            f"tracebacks: {sum(self.tracebacks.values())}",
            *(f"  {count:6d}  {what}" for what, count in self.tracebacks.most_common()),
            f"reader disagreements: {sum(self.disagreements.values())}",
            *(f"  {count:6d}  {what}" for what, count in self.disagreements.most_common()),
            f"crashes (the process died): {self.crashes}",
            f"timeouts (over {TIMEOUT:g} s): {self.timeouts}",
        ]
        return "\n".join(lines)


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_batch(paths: list[str], tally: Tally) -> None:
    """Run one child over `paths`; a mutant that kills or hangs it is counted, and the
    rest of the batch goes to a new child."""
    while paths:
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", *paths],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
            preexec_fn=_limit_memory,
        )
        assert process.stdout is not None
        current: str | None = None
        finished = 0
        deadline = time.monotonic() + TIMEOUT
        while True:
            ready, _, _ = select.select(
                [process.stdout], [], [], max(0.0, deadline - time.monotonic())
            )
            if not ready:
                process.kill()
                process.wait()
                tally.timeouts += 1
                if current is not None:
                    tally.findings.append(("timeout", current))
                break
            line = process.stdout.readline()
            if not line:
                status = process.wait()
                if current is not None:
                    tally.crashes += 1
                    tally.findings.append((f"crash (status {status})", current))
                break
            message = json.loads(line)
            if "start" in message:
                current = message["start"]
                deadline = time.monotonic() + TIMEOUT
            else:
                tally.add(message["results"], message["done"])
                current = None
                finished += 1
        done_upto = finished + (1 if current is not None else 0)
        paths = paths[done_upto:] if done_upto else paths[1:]


def campaign(args: argparse.Namespace) -> Tally:
    """Generate and run mutants until --count or --seconds is reached."""
    corpus = [
        path
        for name in (args.captures or DEFAULT_CORPUS)
        for path in (sorted((ROOT / name).iterdir()) if (ROOT / name).is_dir() else [ROOT / name])
        if path.suffix in (".pcap", ".pcapng", ".cap", ".gz")
    ]
    if not corpus:
        raise SystemExit("no captures to mutate")
    rng = random.Random(args.seed)
    tally = Tally()
    started = time.monotonic()
    generator = mutants(corpus, rng)
    with tempfile.TemporaryDirectory(prefix="gre-keepalive-mutants-") as scratch:
        made = 0
        while made < args.count and time.monotonic() - started < args.seconds:
            batch = []
            for _ in range(min(BATCH, args.count - made)):
                kind, source, data = next(generator)
                path = os.path.join(scratch, f"m{made:07d}-{kind}-{source}")
                Path(path).write_bytes(data)
                tally.by_mutator[kind] += 1
                batch.append(path)
                made += 1
            run_batch(batch, tally)
            if args.keep:
                keep = Path(args.keep)
                keep.mkdir(parents=True, exist_ok=True)
                for _why, path in tally.findings:
                    if os.path.exists(path):
                        shutil.copy(path, keep / os.path.basename(path))
            for path in batch:
                with contextlib.suppress(OSError):
                    os.unlink(path)
    return tally


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the campaign, print the counts; exit 1 when it found any."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="The campaign stops at --count mutants or after --seconds, whichever comes first.",
    )
    parser.add_argument(
        "captures", nargs="*", help=f"captures or folders (default: {', '.join(DEFAULT_CORPUS)})"
    )
    parser.add_argument("--count", type=int, default=500, help="mutants to run (default 500)")
    parser.add_argument("--seconds", type=float, default=600.0, help="time budget (default 600)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--keep", metavar="DIR", help="save every mutant with a finding here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child)
        return 0
    began = time.monotonic()
    tally = campaign(args)
    print(tally.report())
    print(f"seconds: {time.monotonic() - began:.1f}")
    found = sum(tally.tracebacks.values()) + tally.crashes + tally.timeouts
    found += sum(tally.disagreements.values())
    found += sum(1 for why, _ in tally.findings if why.startswith("exit"))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
