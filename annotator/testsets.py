"""Finding the test set a command or a view means."""
from __future__ import annotations

from .errors import InputError
from .models import TestSet


def resolve_testset(name: str | None) -> TestSet:
    """The test set called ``name``; without a name, the only one there is."""
    if name:
        try:
            return TestSet.objects.get(name=name)
        except TestSet.DoesNotExist:
            known = ", ".join(TestSet.objects.values_list("name", flat=True)) or "none yet"
            raise InputError(f"There is no test set named {name!r} (known: {known}).") from None
    names = list(TestSet.objects.values_list("name", flat=True)[:10])
    if not names:
        raise InputError("There is no test set yet; create one with import_testset first.")
    if len(names) > 1:
        raise InputError(
            f"There are several test sets ({', '.join(names)}); choose one with --testset NAME."
        )
    return TestSet.objects.get(name=names[0])
