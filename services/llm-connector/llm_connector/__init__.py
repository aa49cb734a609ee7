"""llm-connector: a small HTTP API in front of the Gemini API."""
