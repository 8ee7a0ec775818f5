"""User-facing settings: where collections live, how images are fetched and batched."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .encoders.limits import MAX_PIXELS
from .errors import InputError

if TYPE_CHECKING:
    from .sources.fetch import FetchCfg
    from .sources.inputs import LoadCfg


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
        url_deadline: Seconds one URL may take in all: attempts, waits, redirects and the
            download (a server that drips its bytes is cut off).
        url_allow: Hosts that may be fetched although their address is not public (loopback,
            private, link-local, multicast, reserved): host names (``"images.lan"``,
            ``"*.corp.example"``), addresses or networks (``"10.0.0.0/8"``), each optionally with
            a port (``"127.0.0.1:8080"``), or ``"*"`` for any address. Default: none (public
            addresses only). Checked on every redirect too; other schemes than http(s) are never fetched.
        max_bytes: Size cap of one image file or download.
        max_pixels: Most pixels decoded for one image (a JPEG is decoded at the smallest scale
            the model can use, and counts at that scale); more is a per-item failure.
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
    url_deadline: float = Field(30.0, gt=0)
    url_allow: tuple[str, ...] = ()
    max_bytes: int = Field(50 * 2**20, gt=0)
    max_pixels: int = Field(MAX_PIXELS, gt=0)
    jpeg_decoder: Literal["auto", "pil", "torchvision"] = "auto"

    def __init__(self, **values: Any):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise settings_error(exc) from None

    def __setattr__(self, name: str, value: Any) -> None:
        try:
            super().__setattr__(name, value)
        except ValidationError as exc:
            raise settings_error(exc) from None

    def resolved_data_dir(self) -> Path:
        """``data_dir`` if set, else :func:`default_data_dir`."""
        return Path(self.data_dir).expanduser() if self.data_dir is not None else default_data_dir()

    @field_validator("url_allow", mode="before")
    @classmethod
    def _one_host_is_a_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("url_allow")
    @classmethod
    def _hosts_parse(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from .sources.url_policy import URLPolicy

        URLPolicy.create(value)   # a ValueError names the bad entry
        return value

    def fetch_cfg(self) -> "FetchCfg":
        """The URL-fetch part of these settings."""
        from .sources.fetch import FetchCfg

        return FetchCfg(timeout=self.url_timeout, attempts=self.url_retries, backoff=self.url_backoff,
                        max_bytes=self.max_bytes, deadline=self.url_deadline, allow=tuple(self.url_allow))

    def load_cfg(self, fit: int | None = None) -> "LoadCfg":
        """How inputs are read and decoded for a model whose input is ``fit`` pixels square."""
        from .sources.inputs import LoadCfg

        return LoadCfg(fetch=self.fetch_cfg(), max_pixels=self.max_pixels, fit=fit)

    @classmethod
    def create(cls, settings: "Settings | dict[str, Any] | None" = None, **overrides: Any) -> "Settings":
        """Settings from an instance or a dict, with ``overrides`` (None values ignored) applied."""
        base = settings.model_dump() if isinstance(settings, Settings) else dict(settings or {})
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)


def settings_error(exc: ValidationError) -> InputError:
    """Pydantic's validation error of :class:`Settings` as an InputError naming each bad key
    (and, for an unknown one, the valid keys)."""
    valid = ", ".join(Settings.model_fields)
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "settings"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown setting {key!r}; valid settings: {valid}")
        else:
            lines.append(f"setting {key}={err.get('input')!r}: {err['msg']}")
    return InputError("; ".join(lines))
