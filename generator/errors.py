"""The one error type tinygen raises for anything a user can fix."""


class TinygenError(Exception):
    """A user-facing failure: the message says what was wrong and what to do.

    The CLI catches this once and prints the message without a traceback.
    """

    def __init__(self, message: str, hint: str | None = None, short: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.short = short or message  # a few words, for a table cell

    def __str__(self) -> str:
        return f"{self.message}\nHint: {self.hint}" if self.hint else self.message
