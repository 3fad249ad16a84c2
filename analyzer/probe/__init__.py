"""The active probe: a keepalive endpoint on raw sockets (``gre-keepalive probe``)."""
