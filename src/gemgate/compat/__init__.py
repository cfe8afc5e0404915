"""OpenAI's wire format, translated to and from Gemini's: for OpenAI-format clients (the
`/v1/chat/completions` edge) and for OpenAI-compatible providers (the last fallback links)."""
