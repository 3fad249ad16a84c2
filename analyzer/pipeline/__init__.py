"""The analyze pipeline: one pass read → keepalive → diagnose for one or two vantages."""
