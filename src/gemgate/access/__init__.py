"""Team access: virtual keys (`gk-…`), their rights, rate limits and budgets."""
