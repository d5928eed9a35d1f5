"""Real parts to test and measure jupyter_streamchat against, shared by ``tests/`` and ``benchmarks/``.

Not shipped (the wheel packages only ``jupyter_streamchat``). The map:

- ``upstream``: the fake LLM upstream, a real loopback HTTP server speaking the OpenAI and Anthropic streaming
  formats from a ``Script`` (pacing, stalls, resets, truncation, malformed chunks, error statuses) that records
  every request, including when the client hung up (``RequestRecord.wait_closed``).
- ``server_process``: a real ``jupyter server`` process with the extension, in private Jupyter directories
  (``ServerProcess``; ``free_port``, ``private_env``, ``REPO``).
- ``kernels``: real kernels driven message by message, started by a server (``ServerKernel``, over its websocket)
  or by nothing (``LocalKernel``, as VS Code does it).
- ``lab``: a real ``jupyter lab`` process (``LabProcess``) and Debian's chromium through Playwright.
- ``hub``: a real JupyterHub on loopback with configurable-http-proxy and local single-user servers (``Hub``).
- ``widget_tree``: imported inside test kernels: the model ids of a widget and everything under it.
- ``waiting``: the one way to wait, ``wait_until`` / ``await_until``: until something the system emits is there,
  with a deadline that only guards a hang (no test asserts on durations; timings live in ``benchmarks/``).
"""
