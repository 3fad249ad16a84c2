"""Stage 2, keepalive: decoded packets in, per-originator keepalive timelines out.

Pairing of requests and returns, the IOS state machine (:mod:`analyzer.keepalive.state`, a
pure function of events and time shared by every consumer), the timeline driver, vendor
profiles, the live tracker and the analysis model every later stage reads.
"""
