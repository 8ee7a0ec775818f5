"""What users pass as images, read into decoded items: ``inputs`` (paths, directories, URLs,
bytes, PIL images and arrays; one reason per item that fails), ``fetch`` (http(s) with retries,
timeouts, a deadline and a size cap) and ``url_policy`` (which addresses may be fetched, URLs
without their credentials). The lowest of the library's own parts: it may import only the base
modules (``errors``, ``_json``, ``_lazy``, ``_version``), the encoders and the connectors (today
their image helpers and limits, and the retry policy). The parts above import it: ``settings``
(it builds ``FetchCfg`` and ``LoadCfg``), ``ingest``, the collection, ``serve``,
``integrations`` and ``cli``.
"""
