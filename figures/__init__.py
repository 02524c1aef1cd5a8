"""The book's figures, each drawn by code: ``python -m figures`` redraws every static image."""
