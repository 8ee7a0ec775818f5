"""RAG adapters: ``langchain`` and ``llamaindex`` retrievers over a collection, sharing
``_common``. They may import the collection and its search (the async form ``aio``), the
values at the top, ``sources`` (to fetch images by URL), the encoders and the connectors; never
``ingest``, ``serve``, ``demo`` or ``cli``, and nothing in the library imports them (each needs
its own extra).
"""
