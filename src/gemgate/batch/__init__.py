"""`gemgate batch`: large jobs of prompts run through the gateway — resumable, crash-safe,
metered — and Gemini's Batch API."""
