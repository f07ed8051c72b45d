"""Notebooks out: what ran in a container, or a whole response conversation, as an
nbformat v4 ``.ipynb``. Reads sessions (their execution history) and the response store
(each response's executions); knows nothing of HTTP."""
