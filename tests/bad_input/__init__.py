"""Issue 8's bad requests: Hypothesis generators, one module per route family, and their checks."""
