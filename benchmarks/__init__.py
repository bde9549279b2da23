"""Benchmarks: one script per measured claim; each prints a table and appends a JSON line to results.jsonl."""
