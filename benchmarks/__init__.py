"""Benchmarks for jupyter_streamchat: run ``python -m benchmarks.run`` (see benchmarks/README.md).

Every benchmark drives a real Jupyter server subprocess with the extension, a loopback fake LLM
upstream in its own process, and a lean client in this process, so the three never share a GIL.
"""
