"""analysis/providers package."""
