"""The one exception type for mistakes a user can fix (bad file, bad flag value, ...)."""


class UserError(Exception):
    """A problem the user caused and can fix; its message is one line naming the thing and the fix."""


def first_line(e: BaseException) -> str:
    """The first line of what an error says (TensorFlow's OpError keeps it in `.message`), or its
    type's name when it says nothing: how every one-line message quotes the error it reports."""
    text = str(getattr(e, "message", None) or e).strip()
    return text.splitlines()[0] if text else type(e).__name__
