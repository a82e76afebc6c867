"""Upstream side: provider kinds and the pooled HTTP client."""
