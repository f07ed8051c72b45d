"""HTTP: thin FastAPI routers. They read service objects from ``app.state`` (built once in
the lifespan in ``app``), call them, and turn results into wire shapes; ``errors`` alone
maps domain errors to OpenAI's error shape."""
