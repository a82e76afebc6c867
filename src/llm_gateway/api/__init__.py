"""Admin API (FastAPI), health and metrics endpoints."""
