"""Print result rows as fixed-width tables: one broker's rows, or several brokers' side by side."""

from __future__ import annotations

from collections.abc import Sequence

from .common import Row

HEADER = ("scenario", "figure", "floor", "floor is", "ratio", "note")


def number(value: float | None, unit: str = "") -> str:
    """A figure with sensible precision and its unit."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}".strip()


def render(rows: Sequence[Row]) -> str:
    """The rows as aligned text, one line each."""
    cells = [HEADER]
    for row in rows:
        ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
        floor_unit = row.unit if row.floor is not None else ""
        cells.append(
            (
                row.scenario,
                number(row.value, row.unit),
                number(row.floor, floor_unit),
                row.floor_name or "-",
                ratio,
                row.note,
            )
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER) - 1)]
    out = []
    for n, line in enumerate(cells):
        left = [line[0].ljust(widths[0])]
        left += [
            line[i].rjust(widths[i]) if i in (1, 2, 4) else line[i].ljust(widths[i])
            for i in range(1, len(HEADER) - 1)
        ]
        out.append("  ".join([*left, line[-1]]).rstrip())
        if n == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)


def side_by_side(tables: Sequence[tuple[str, Sequence[Row]]]) -> str:
    """One line per scenario that has a figure on every broker: the figure of each, in order."""
    kinds = [url.split("://", 1)[0] for url, _ in tables]
    figures = [{r.scenario: r for r in rows if r.value is not None} for _, rows in tables]
    common = [name for name in figures[0] if all(name in other for other in figures[1:])]
    cells = [("scenario", *kinds)]
    cells += [(name, *(number(f[name].value, f[name].unit) for f in figures)) for name in common]
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    out = []
    for n, line in enumerate(cells):
        parts = [line[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(parts))
        if n == 0:
            out.append("-" * len(out[0]))
    return "\n".join(out)
