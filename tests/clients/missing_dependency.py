"""A client module whose own dependency is not installed."""

import mailconform_no_such_dependency  # noqa: F401


def sync(ctx):
    pass
