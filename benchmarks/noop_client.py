"""A client that does nothing, so a scenario's time is the harness's own."""


def sync(ctx) -> None:
    return None
