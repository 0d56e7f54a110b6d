"""The one error type spec loading raises: it names the file, the SLO, the field and what was expected."""

from __future__ import annotations


class SpecError(ValueError):
    """A spec that cannot become an SLO model. `str()` is the one line the CLI prints."""

    def __init__(self, file: str | None, slo: str | None, field: str | None, expected: str,
                 got: object = None) -> None:
        self.file = file or "<input>"
        self.slo = slo
        self.field = field
        self.expected = expected
        self.got = got
        super().__init__(self._line())

    def _line(self) -> str:
        where = [self.file]
        if self.slo:
            where.append(f"slo {self.slo!r}")
        if self.field:
            where.append(f"field {self.field!r}")
        text = f"{': '.join(where)}: expected {self.expected}"
        if self.got is not None:
            got = repr(self.got)
            text += f", got {got[:80] + '...' if len(got) > 80 else got}"
        return text


class SLOWarning(str):
    """A warning about a valid SLO (low traffic, a page that can never fire); printed, never fatal."""
