"""data: the labelled capture generator (real clients in a private network namespace) and small sample captures."""


class GenerateError(Exception):
    """A user-caused generator error; its message is one line that says what to do."""


__all__ = ["GenerateError"]
