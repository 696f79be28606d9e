"""The OpenAI-compatible surface under /v1: OpenAI's paths, shapes and errors."""
