"""The unified conformance suite: SPEC semantics checked on any backend.

Run it against a backend with::

    pytest --pyargs unified_conformance --unified-backend mybackend
"""
