"""The Textual user interface: `gre-keepalive tui CAPTURE` and the UI of `watch`.

Importing this package (or :mod:`analyzer.tui.command`) must not import textual: only
:mod:`analyzer.tui.app` and the widget modules do, and they are loaded when a UI starts.
The snapshots the widgets render are plain dataclasses computed in :mod:`analyzer.tui.views`.
"""
