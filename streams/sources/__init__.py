"""The source-HTTP layer every pulling domain shares: retries, rate limits, pagination."""
