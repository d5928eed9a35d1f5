"""The engine, shared by the server and the kernel: runs, the chat service, events and their SSE encoding,
errors, request validation, and the names a server and its kernels agree on.

It imports neither ``server`` nor ``kernel``. Nothing is imported here: ``persistence.journal`` imports
``engine.runs`` while ``engine.service`` imports ``persistence``, so an eager import would make a cycle.
"""
