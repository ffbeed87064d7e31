"""Adapters for agent frameworks (imported on demand; the frameworks stay optional)."""
