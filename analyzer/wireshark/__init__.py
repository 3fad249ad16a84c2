"""The Wireshark Lua post-dissector: its template and the ``export-lua`` command."""
