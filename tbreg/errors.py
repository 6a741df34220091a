"""The one exception type for mistakes a user can fix (bad file, bad flag value, ...)."""


class UserError(Exception):
    """A problem the user caused and can fix; its message is one line naming the thing and the fix."""
