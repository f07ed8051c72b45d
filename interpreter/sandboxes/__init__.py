"""Sandboxes: one isolated container holding one Jupyter kernel.

``base`` defines the backend interface and the records it returns; ``docker_backend`` is
the only module that imports ``docker``. ``sandbox`` is a live connection to a sandbox's
kernel (``kernel``, jupyter protocol over ZMQ ipc sockets) and agent (``agent``, file
transfer and kernel control over a unix socket), whatever started the container;
``introspection`` holds what it asks an idle kernel (completions, help, variables).
"""
