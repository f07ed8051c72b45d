"""The model: harmony rendering and parsing, token generation, prefix caching.

This is the only package that imports torch and transformers, and only inside the
backends that need them (``transformers_backend``), so ``interpreter/`` can import the
harmony and generator interfaces without the model stack installed.
"""
