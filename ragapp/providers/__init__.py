"""Model clients: chat, embeddings and moderation, OpenAI-format and local."""
