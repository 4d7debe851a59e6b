"""syncbus tests: real broker and PostgreSQL, local fakes for what is outside."""
