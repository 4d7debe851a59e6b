"""The git domain: test metadata discovered in a Git branch per release (seed 002)."""
