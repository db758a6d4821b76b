"""User-facing errors.

Anything caused by bad input (a YAML key, a mapping entry, a checkpoint file, a CLI
flag) raises `UserError` with a one-line message naming the file, the key and what
would be valid. The CLI prints it as `aimcsim: error: <message>` and exits 2, with no
traceback. Bugs stay ordinary exceptions.
"""


class UserError(Exception):
    """Bad input from the user; the message is a single line that says how to fix it."""


def where(path, key: str = "") -> str:
    """Format a location prefix such as `hw.yaml: analog.adc_bits` for error messages."""
    loc = str(path) if path else "<input>"
    return f"{loc}: {key}" if key else loc
