"""What the probe does on a line-protocol transition besides printing it.

* :func:`transition_line`: one line on stderr per transition, journald-friendly: when
  stderr is the journal (``JOURNAL_STREAM`` names its device and inode, as systemd sets it)
  it starts with a ``<N>`` syslog priority, which journald turns into the entry's priority
  (down = warning, up = notice) and strips.
* :class:`OnChange`: ``--on-change CMD`` runs CMD through ``/bin/sh -c`` with the tunnel,
  state and counter in its environment. The probe's loop never waits for it: a child is
  started, polled on every housekeeping pass and killed (its whole process group) when it
  outlives ``--on-change-timeout``; at most :data:`MAX_RUNNING` run at once, later
  transitions are then skipped with a line on stderr. Its stdout goes to the probe's
  stderr, so it can never corrupt the JSON lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import IO, Any

MAX_RUNNING = 8
PRIORITY = {"down": 4, "up": 5}  # syslog warning / notice
ENV_PREFIX = "GRE_KEEPALIVE_"


def stderr_is_journal() -> bool:
    """Whether stderr is systemd's journal stream: JOURNAL_STREAM ("DEVICE:INODE") names it.

    The variable is inherited by every child, so a probe started from a service with its
    stderr sent elsewhere must not prefix priorities (systemd.exec(5) says to compare).
    """
    device, _, inode = os.environ.get("JOURNAL_STREAM", "").partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        status = os.fstat(2)
    except OSError:
        return False
    return (status.st_dev, status.st_ino) == (int(device), int(inode))


def transition_line(prog: str, event: Mapping[str, Any], tunnel_name: str) -> str:
    """The stderr line of one own-tunnel transition (with a journald priority under systemd)."""
    state = str(event["event"])
    detail = (
        f"counter {event['counter']} >= retries {event.get('retries')}"
        if state == "down"
        else "keepalive returned"
    )
    text = (
        f"{prog}: tunnel {tunnel_name} ({event['originator']} → {event['peer']}, key "
        f"{'none' if event.get('key') is None else event['key']}): line protocol "
        f"{state.upper()} ({detail})"
    )
    if stderr_is_journal():
        return f"<{PRIORITY.get(state, 6)}>{text}"
    return text


def hook_environment(event: Mapping[str, Any], tunnel_name: str) -> dict[str, str]:
    """The variables --on-change CMD gets (besides the probe's own environment)."""
    key = event.get("key")
    return {
        f"{ENV_PREFIX}TUNNEL": tunnel_name,
        f"{ENV_PREFIX}LOCAL": str(event["originator"]),
        f"{ENV_PREFIX}REMOTE": str(event["peer"]),
        f"{ENV_PREFIX}KEY": "" if key is None else str(key),
        f"{ENV_PREFIX}STATE": str(event["event"]),
        f"{ENV_PREFIX}COUNTER": str(event["counter"]),
        f"{ENV_PREFIX}RETRIES": str(event.get("retries", "")),
        f"{ENV_PREFIX}TIME": str(event["time"]),
        f"{ENV_PREFIX}EVENT": json.dumps(dict(event)),
    }


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    deadline: float
    what: str


class OnChange:
    """Runs --on-change CMD per transition without ever blocking the caller."""

    def __init__(
        self,
        command: str,
        timeout: float,
        *,
        log: Callable[[str], None],
        monotonic: Callable[[], float] = time.monotonic,
        stdout: IO[str] | None = None,
    ) -> None:
        self.command = command
        self.timeout = timeout
        self.log = log
        self.monotonic = monotonic
        self.stdout = stdout if stdout is not None else sys.stderr
        self.running: list[_Child] = []
        self.started = 0
        self.skipped = 0
        self.killed = 0

    def fire(self, event: Mapping[str, Any], tunnel_name: str) -> None:
        """Start CMD for one transition (or skip it when too many still run)."""
        self.poll()
        what = f"{tunnel_name} {event['event']}"
        if len(self.running) >= MAX_RUNNING:
            self.skipped += 1
            self.log(f"--on-change not run for {what}: {MAX_RUNNING} earlier runs still going")
            return
        try:
            process = subprocess.Popen(
                ["/bin/sh", "-c", self.command],
                env={**os.environ, **hook_environment(event, tunnel_name)},
                stdin=subprocess.DEVNULL,
                stdout=self.stdout.fileno(),
                start_new_session=True,  # its own process group: a timeout kills it all
            )
        except OSError as exc:
            self.log(f"--on-change could not start for {what}: {exc.strerror or exc}")
            return
        self.started += 1
        self.running.append(_Child(process, self.monotonic() + self.timeout, what))

    def poll(self) -> None:
        """Reap finished runs; kill those past their deadline."""
        now = self.monotonic()
        still = []
        for child in self.running:
            status = child.process.poll()
            if status is not None:
                if status != 0:
                    self.log(f"--on-change for {child.what} exited {status}")
                continue
            if now >= child.deadline:
                self._kill(child)
                continue
            still.append(child)
        self.running = still

    def _kill(self, child: _Child) -> None:
        self.killed += 1
        try:
            os.killpg(child.process.pid, signal.SIGKILL)
        except OSError:
            child.process.kill()
        child.process.wait()
        self.log(f"--on-change for {child.what} killed after {self.timeout:g} s")

    def close(self, grace: float) -> None:
        """At exit: let running commands finish for up to `grace` seconds, then kill them."""
        end = self.monotonic() + grace
        while self.running and self.monotonic() < end:
            self.poll()
            time.sleep(0.02)
        for child in self.running:
            if child.process.poll() is None:
                self._kill(child)
        self.running = []
