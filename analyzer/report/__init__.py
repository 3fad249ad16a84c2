"""Stage 4, report: a finished analysis in, text, JSON or CSV out (one module each)."""
