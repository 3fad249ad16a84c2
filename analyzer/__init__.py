"""gre-keepalive: GRE keepalive analysis (Cisco IOS semantics) from packet captures."""

__version__ = "0.1.0"
