"""``vitr demo``: ``run`` (render a gallery of the model's world, index it, run relation
queries and their swaps next to the global baseline), ``page`` (the HTML page of the hits) and
``sheet`` (contact sheets with each query word's grounded box). It may import the collection
and its search, the values at the top, ``sources``, the encoders (their worlds and evaluation)
and the connectors; never ``ingest`` (it adds through the collection), ``serve``,
``integrations`` or ``cli``. Only ``cli`` imports it.
"""
