"""Pydantic models shared by every syncbus process: settings, envelopes, API bodies, topics."""
