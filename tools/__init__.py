"""Maintenance helpers for the book's sources (not part of the `book` package)."""
