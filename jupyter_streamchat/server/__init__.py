"""The Jupyter server extension: the ``StreamChat`` app (traits, wiring, lifecycle), the Tornado handlers
(REST + SSE) and the kernel credential. A thin adapter over ``engine``; never imported by ``kernel``.
"""
