"""Stage 3, diagnose: finished timelines in, typed diagnoses and what-if replays out."""
