"""Limits on what users pass, in a module that imports nothing (so ``Settings`` reads its defaults
from here without loading torch): each limit has one default, here."""

MAX_PIXELS = 50_000_000
"""The default cap of pixels decoded for one image (a JPEG counts at the scale it is decoded at):
``Settings.max_pixels`` and the encoders' own ``load_image``/``decode_image``. Below PIL's own
decompression-bomb threshold (89,478,485), so PIL never warns first."""
