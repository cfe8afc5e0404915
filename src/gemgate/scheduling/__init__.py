"""Quota-aware scheduling: know each project's limits, admit requests so Google's 429s stay rare,
serve the most important work first, and spend free quota before paid."""
