"""Talking to LLMs: an OpenAI-compatible chat client, structured (JSON) output, and the LLM judge."""
