"""Plain-text output shared by the commands (pure: no TensorFlow)."""


def table(header, rows) -> str:
    """`header` and `rows` (sequences of str) as left-aligned columns two spaces apart, no trailing spaces."""
    lines = [tuple(header), *map(tuple, rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
