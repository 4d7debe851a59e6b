"""The ingest API (FastAPI): validates, authenticates, records jobs, relays progress as SSE."""
