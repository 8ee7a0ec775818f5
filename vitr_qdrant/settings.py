"""User-facing settings: where collections live, how images are fetched and batched."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from .fetch import FetchCfg


def default_data_dir() -> Path:
    """Directory of embedded collections: ``$VITR_QDRANT_HOME``, else a stable user data dir
    (``$XDG_DATA_HOME/vitr-qdrant`` or ``~/.local/share/vitr-qdrant``; never a temp dir)."""
    from .connectors import default_data_dir as connectors_dir

    return connectors_dir()


class Settings(BaseModel):
    """Settings of a :class:`~vitr_qdrant.VitrCollection`; unknown keys are an error.

    Attributes:
        data_dir: Directory of embedded collections (see :func:`default_data_dir`).
        batch_size: Images decoded, encoded and written per batch.
        workers: Threads that read, fetch and decode images.
        url_timeout: Seconds per HTTP connect / read.
        url_retries: Attempts per URL in all (transient errors only: timeouts, refused
            connections, 408/425/429/5xx; the policy of :mod:`vitr_qdrant.connectors.retry`).
        url_backoff: First wait between attempts in seconds (doubles each time, at most 10 s).
        max_bytes: Size cap of one image file or download.
        jpeg_decoder: ``"auto"`` (default): with a model on CUDA, JPEG files and bytes are
            decoded in batches on the GPU (nvJPEG) while reading, encoding and writing overlap;
            otherwise PIL. ``"torchvision"``: that batched path on the model's device, whatever
            it is. ``"pil"``: always PIL in the reader threads.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    data_dir: Optional[Path] = None
    batch_size: int = Field(32, gt=0)
    workers: int = Field(4, gt=0)
    url_timeout: float = Field(10.0, gt=0)
    url_retries: int = Field(3, gt=0, le=10)
    url_backoff: float = Field(0.5, ge=0)
    max_bytes: int = Field(50 * 2**20, gt=0)
    jpeg_decoder: Literal["auto", "pil", "torchvision"] = "auto"

    def resolved_data_dir(self) -> Path:
        """``data_dir`` if set, else :func:`default_data_dir`."""
        return Path(self.data_dir).expanduser() if self.data_dir is not None else default_data_dir()

    def fetch_cfg(self) -> "FetchCfg":
        """The URL-fetch part of these settings."""
        from .fetch import FetchCfg

        return FetchCfg(timeout=self.url_timeout, attempts=self.url_retries, backoff=self.url_backoff,
                        max_bytes=self.max_bytes)

    @classmethod
    def create(cls, settings: "Settings | dict[str, Any] | None" = None, **overrides: Any) -> "Settings":
        """Settings from an instance or a dict, with ``overrides`` (None values ignored) applied."""
        base = settings.model_dump() if isinstance(settings, Settings) else dict(settings or {})
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)
