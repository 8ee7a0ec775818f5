"""The ingest pipeline behind ``VitrCollection.add_images`` / ``add_texts``: ``pipeline`` (the
batch loop: read, skip what is stored, encode, write, report) and ``decoders`` (its two decode
strategies, PIL on the reader threads or JPEG on the model's device). It may import ``sources``,
the values at the top (``settings``, ``params``, ``results``, ``grounding`` and the base modules
such as ``errors``), the encoders and the connectors; never the collection and its search
(``collection``, ``search``, ``aio``, ``store_info``, ``upgrade``) or the parts above them
(``serve``, ``integrations``, ``demo``, ``cli``). The collection imports it.
"""
