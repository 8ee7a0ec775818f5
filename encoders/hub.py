"""Loading open_clip weights by tag without a minute of retries when the hub cannot be reached."""
from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Iterator
from urllib.parse import urlparse

log = logging.getLogger(__name__)
PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
PROBE_TIMEOUT_S = 3.0


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether the Hugging Face hub answers a TCP connect (True behind a proxy: it cannot be probed)."""
    from huggingface_hub import constants

    if any(os.environ.get(v) for v in PROXY_VARS):
        return True
    url = urlparse(constants.ENDPOINT)
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError as exc:
        log.info("the hub at %s is not reachable: %s", constants.ENDPOINT, exc)
        return False


def weights_cached(model: str, tag: str) -> bool:
    """Whether open_clip's weights ``model``/``tag`` are in the local Hugging Face cache (True for
    tags that download from a plain URL: those fail fast by themselves)."""
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    hub = (open_clip.get_pretrained_cfg(model, tag) or {}).get("hf_hub")
    if not hub:
        return True
    repo, filename = os.path.split(hub)
    filename = filename or "open_clip_pytorch_model.bin"
    names = [filename, "open_clip_model.safetensors" if filename == "open_clip_pytorch_model.bin"
             else os.path.splitext(filename)[0] + ".safetensors"]
    return any(isinstance(try_to_load_from_cache(repo, n), str) for n in names)


@contextlib.contextmanager
def offline_unless_reachable() -> Iterator[bool]:
    """Hugging Face downloads inside this block use the local cache only when the hub cannot be
    reached (yields whether it can): offline, a tag not cached fails at once instead of after
    huggingface_hub's retries (about a minute per file)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or hub_reachable():
        yield not constants.HF_HUB_OFFLINE
        return
    constants.HF_HUB_OFFLINE = True   # read by huggingface_hub at each call
    try:
        yield False
    finally:
        constants.HF_HUB_OFFLINE = False
