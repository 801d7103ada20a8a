"""N+1 detection for Django: the same relation lazily loaded `nplusone_threshold` times in one request.

A lazy load is counted where Django runs it, in the related descriptors (the same hooks in Django 4.2
to 6.1, which keep these names and signatures):

- forward foreign key / one-to-one (`ticket.organization`): `ForwardManyToOneDescriptor.get_object`,
  which Django calls only when the related object is not cached (select_related fills the cache);
  fix `select_related("organization")`;
- reverse one-to-one (`place.restaurant`): `ReverseOneToOneDescriptor.__get__` when the relation is not
  cached; fix `select_related("restaurant")`;
- reverse foreign key and many-to-many (`ticket.comments.all()`, `ticket.tags.all()`): the related
  manager classes Django builds (`create_reverse_many_to_one_manager`,
  `create_forward_many_to_many_manager`) get a `get_queryset` that marks the queryset it returns when
  it is not the prefetched one; the marked queryset (and its clones) counts a lazy load when it runs
  its query (`_fetch_all`: iteration, `len`, `get`, `first`, ...). Counting at evaluation, not at
  `get_queryset`, keeps `ticket.comments.create(...)` from looking like a load. Fix
  `prefetch_related("comments")`.

The findings are perfkit.db's (`NPlusOneDetector.lazy_load`): `n_plus_one` with the relation
("Ticket.comments") and the fix, counted in `db_nplusone_total{relationship,route}`. Why not read the
statement's origin (a stack walk per query, slow) or match statement shapes (cannot name the relation
to fix): the descriptors are where Django itself decides that a load is lazy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perfkit.db.config import DbConfig
from perfkit.db.nplusone import NPlusOneDetector
from perfkit.metrics import Collector

__all__ = ["install"]

_state: dict[str, Any] = {"detector": None, "patched": False}
_marked: dict[tuple[type, tuple[str, str]], type] = {}  # (QuerySet class, relation) -> counting subclass
_APPLY = ".{fix} to the queryset"


def install(config: DbConfig, collector: Collector, *, enabled: bool = True) -> None:
    """Detect with this config and collector (again: replace them); patch Django once per process.
    `enabled=False` (no database instrumented) records nothing and patches nothing."""
    _state["detector"] = NPlusOneDetector(config, collector) if enabled else None
    if enabled and not _state["patched"]:
        _patch()
        _state["patched"] = True


def _loaded(key: tuple[str, str], fix: str) -> None:
    detector: NPlusOneDetector | None = _state["detector"]
    if detector is not None:
        detector.lazy_load(key, fix, _APPLY)


def _select(name: str) -> str:
    return f'select_related("{name}")'


def _prefetch(name: str) -> str:
    return f'prefetch_related("{name}")'


def _patch() -> None:
    from django.apps import apps
    from django.db.models.fields import related_descriptors as rd

    forward_get_object = rd.ForwardManyToOneDescriptor.get_object

    def get_object(self: Any, instance: Any) -> Any:
        field = self.field
        _loaded((field.model.__name__, field.name), _select(field.name))
        return forward_get_object(self, instance)

    reverse_one_get = rd.ReverseOneToOneDescriptor.__get__

    def reverse_one(self: Any, instance: Any, cls: Any = None) -> Any:
        if instance is not None and instance.pk is not None and not self.related.is_cached(instance):
            name = self.related.get_accessor_name()
            _loaded((self.related.model.__name__, name), _select(name))
        return reverse_one_get(self, instance, cls)

    reverse_many = rd.create_reverse_many_to_one_manager
    many_to_many = rd.create_forward_many_to_many_manager

    def create_reverse_many_to_one_manager(superclass: Any, rel: Any) -> Any:
        name = rel.get_accessor_name()
        return _counting(reverse_many(superclass, rel), (rel.model.__name__, name), _prefetch(name))

    def create_forward_many_to_many_manager(superclass: Any, rel: Any, reverse: bool) -> Any:
        manager = many_to_many(superclass, rel, reverse)
        if reverse:
            key = (rel.model.__name__, rel.get_accessor_name())
        else:
            key = (rel.field.model.__name__, rel.field.name)
        return _counting(manager, key, _prefetch(key[1]))

    rd.ForwardManyToOneDescriptor.get_object = get_object
    rd.ReverseOneToOneDescriptor.__get__ = reverse_one
    rd.create_reverse_many_to_one_manager = create_reverse_many_to_one_manager
    rd.create_forward_many_to_many_manager = create_forward_many_to_many_manager
    # a descriptor that built its manager class before this ran keeps it (a cached_property): rebuild
    for model in apps.get_models(include_auto_created=True):
        for attribute in vars(model).values():
            if isinstance(attribute, rd.ReverseManyToOneDescriptor):
                attribute.__dict__.pop("related_manager_cls", None)


def _counting(manager: type, key: tuple[str, str], fix: str) -> type:
    """`manager` (a class Django just built for one relation) with a `get_queryset` that marks the
    queryset it returns unless it is the prefetched one (already evaluated)."""
    get_queryset: Callable[[Any], Any] = manager.get_queryset  # type: ignore[attr-defined]  # a Manager

    def counted(self: Any) -> Any:
        queryset = get_queryset(self)
        if queryset._result_cache is None:
            queryset.__class__ = _marked_class(type(queryset), key, fix)
        return queryset

    manager.get_queryset = counted  # type: ignore[attr-defined]  # this relation's own class
    return manager


def _marked_class(base: type[Any], key: tuple[str, str], fix: str) -> type[Any]:
    """A subclass of the QuerySet class `base` that counts one lazy load of `key` per query it runs;
    one per (class, relation), so bounded; it pickles as `base`."""
    base = getattr(base, "_perfkit_base", base)  # never a marked class over another marked class
    fetch_all = base._fetch_all
    found = _marked.get((base, key))
    if found is not None:
        return found

    def _fetch_all(self: Any) -> None:
        if self._result_cache is None:
            _loaded(key, fix)
        fetch_all(self)

    def __reduce_ex__(self: Any, protocol: Any) -> Any:
        return (_restore, (base, self.__getstate__()))

    made = type(
        base.__name__,
        (base,),
        {"_fetch_all": _fetch_all, "__reduce_ex__": __reduce_ex__, "_perfkit_base": base,
         "__module__": base.__module__, "__qualname__": base.__qualname__},
    )  # fmt: skip
    _marked[(base, key)] = made
    return made


def _restore(base: type[Any], state: dict[str, Any]) -> Any:
    """Unpickle a marked queryset as a plain one of its base class."""
    queryset = object.__new__(base)  # what unpickling does: no __init__
    queryset.__setstate__(state)
    return queryset
