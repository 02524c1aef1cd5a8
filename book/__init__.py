"""The code the chapters of *Variational Autoencoders, Properly* share.

Each module has one job; chapters display their source and run it, so the book's text
and its code never drift apart.
"""

__version__ = "0.1.0"
