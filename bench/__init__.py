"""`make bench`: how fast the stack ingests, drains and answers, each figure beside its reference.

Every figure is measured in the same run as the reference it is compared
with, on a fresh LocalStack container (the emulator's ingest slows as it
fills, so a stream reused across figures would bias them). `python -m bench`
writes `results.json`, `results.md` and `results.png` next to this file.
"""
