"""Name -> item registries (models, scores, families, ...) whose errors list the valid names."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import UserError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            return item

        return decorator

    def unregister(self, name: str) -> None:
        """Remove an entry (a plug-in registered for a while, as the tests do)."""
        del self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def values(self) -> list[T]:
        """Every entry in registration order."""
        return list(self._items.values())

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def get(self, name: str, where: str = "") -> T:
        if name not in self._items:
            prefix = f"{where}: " if where else ""
            raise UserError(f"{prefix}unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        return self._items[name]
