"""The served mode: ``python -m model_runner serve`` runs one ``Generator`` behind HTTP
(``app.create_app``), in this project's native wire format and in the token-in,
token-out subsets of vLLM's and SGLang's."""

from model_runner.server.app import create_app

__all__ = ["create_app"]
