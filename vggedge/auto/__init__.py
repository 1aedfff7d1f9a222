"""``--recipe auto``: per-block widths searched against measured latency or size, within the accuracy budget."""
