"""AsyncVitrCollection: the collection's calls as coroutines that never block the event loop."""
from __future__ import annotations

import asyncio
import functools
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Sequence, TypeVar

from .collection import VitrCollection
from .errors import InputError
from .params import SearchParams
from .results import AddReport, Hit, ItemId, Record

T = TypeVar("T")
_FACES = threading.Lock()


class AsyncVitrCollection:
    """A :class:`VitrCollection` for asyncio code (a service, an async RAG chain).

    Every call runs on one worker thread of its own, so the event loop keeps serving while the
    model encodes and the store searches, and the collection sees one call at a time (calls
    made concurrently queue up in order). Methods and arguments are those of
    :class:`VitrCollection`; each returns a coroutine::

        col = await vq.AsyncVitrCollection.open("photos", path="./store")
        hits, more = await asyncio.gather(col.search("dog left of cat"), col.search("cat on sofa"))
        await col.close()

    Args:
        collection: An open :class:`VitrCollection`, or a collection name followed by
            :class:`VitrCollection`'s other arguments (opened here, loading the model before the
            constructor returns; :meth:`open` does that on a worker thread instead).
        lock: A ``threading.Lock`` every call holds while it runs, shared with synchronous users
            of the same collection (e.g. the service's request threads); None: a new one.
    """

    def __init__(self, collection: VitrCollection | str, *args: Any, lock: Any = None, **kwargs: Any):
        if not isinstance(collection, VitrCollection):
            collection = VitrCollection(collection, *args, **kwargs)
        elif args or kwargs:
            raise InputError("an open VitrCollection takes no other arguments here (only lock=)")
        self.collection = collection
        self.lock = lock if lock is not None else threading.Lock()
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"vitr-{collection.name}")

    @classmethod
    async def open(cls, name: str, **kwargs: Any) -> "AsyncVitrCollection":
        """Open (or create) collection ``name`` with :class:`VitrCollection`'s arguments, loading
        the model on a worker thread."""
        return cls(await asyncio.to_thread(VitrCollection, name, **kwargs))

    @classmethod
    def of(cls, collection: VitrCollection, lock: Any = None) -> "AsyncVitrCollection":
        """The one async face of ``collection`` (made on first use, then shared), so that the RAG
        adapters and the service queue their calls on the same worker."""
        with _FACES:
            face = getattr(collection, "_async_face", None)
            if face is None:
                face = cls(collection, lock=lock)
                collection._async_face = face
            return face

    @property
    def name(self) -> str:
        return self.collection.name

    @property
    def model(self) -> Any:
        return self.collection.model

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def locked() -> T:
            with self.lock:
                return fn(*args, **kwargs)

        return await asyncio.get_running_loop().run_in_executor(self._worker, functools.partial(locked))

    async def encode_query(self, text: str) -> Any:
        """:meth:`VitrCollection.encode_query`."""
        return await self._run(self.collection.encode_query, text)

    async def search(self, text: Any, **kwargs: Any) -> list[Hit]:
        """:meth:`VitrCollection.search` (its parameters are checked at once, on the loop)."""
        return await self._run(self.collection.search, text, params=_params(kwargs))

    async def search_batch(self, texts: Sequence[Any], **kwargs: Any) -> list[list[Hit]]:
        """:meth:`VitrCollection.search_batch`."""
        return await self._run(self.collection.search_batch, texts, params=_params(kwargs))

    async def search_by_image(self, image: Any, **kwargs: Any) -> list[Hit]:
        """:meth:`VitrCollection.search_by_image`."""
        return await self._run(self.collection.search_by_image, image, params=_params(kwargs))

    async def search_texts(self, image: Any, **kwargs: Any) -> list[Hit]:
        """:meth:`VitrCollection.search_texts`."""
        return await self._run(self.collection.search_texts, image, params=_params(kwargs))

    async def add_images(self, items: Any, **kwargs: Any) -> AddReport:
        """:meth:`VitrCollection.add_images` (``progress`` off by default here)."""
        kwargs.setdefault("progress", False)
        return await self._run(self.collection.add_images, items, **kwargs)

    async def add_texts(self, texts: Any, **kwargs: Any) -> AddReport:
        """:meth:`VitrCollection.add_texts`."""
        return await self._run(self.collection.add_texts, texts, **kwargs)

    async def get(self, ids: ItemId | Sequence[ItemId]) -> list[Record]:
        """:meth:`VitrCollection.get`."""
        return await self._run(self.collection.get, ids)

    async def scroll(self, **kwargs: Any) -> list[Record]:
        """:meth:`VitrCollection.scroll`, read into a list (use ``limit`` / ``offset`` to page)."""
        return await self._run(lambda: list(self.collection.scroll(**kwargs)))

    async def count(self, filter: Any = None) -> int:
        """:meth:`VitrCollection.count`."""
        return await self._run(self.collection.count, filter)

    async def set_metadata(self, ids: ItemId | Sequence[ItemId], metadata: Any, replace: bool = False) -> int:
        """:meth:`VitrCollection.set_metadata`."""
        return await self._run(self.collection.set_metadata, ids, metadata, replace)

    async def delete(self, ids: ItemId | Sequence[ItemId]) -> None:
        """:meth:`VitrCollection.delete`."""
        await self._run(self.collection.delete, ids)

    async def info(self) -> dict[str, Any]:
        """:meth:`VitrCollection.info`."""
        return await self._run(self.collection.info)

    async def drop(self) -> None:
        """:meth:`VitrCollection.drop`, then stop the worker."""
        await self._run(self.collection.drop)
        self._worker.shutdown(wait=False)

    async def close(self) -> None:
        """Close the collection (after the calls queued before this one), then stop the worker."""
        await self._run(self.collection.close)
        self._worker.shutdown(wait=False)

    async def __aenter__(self) -> "AsyncVitrCollection":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _params(kwargs: dict[str, Any]) -> SearchParams:
    """The search parameters among ``kwargs``, checked now (on the loop: cheap)."""
    return SearchParams.create(kwargs.pop("params", None), **kwargs)
