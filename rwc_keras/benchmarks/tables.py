"""The benchmarks' tables: one measured figure per row (median, min and max over the
repeats, and a ratio to another row), printed as measured and written as markdown."""

import dataclasses
import statistics


@dataclasses.dataclass
class Row:
    """One measured figure: a value per repetition, its unit, and a ratio to another row."""

    name: str
    values: list
    unit: str
    ratio: str = ""

    @property
    def median(self):
        """The median over the repetitions: the figure the tables and ratios use."""
        return statistics.median(self.values)


class Table:
    """One table of rows; prints a progress line as each row is measured (the run is long)."""

    def __init__(self, title, notes=()):
        self.title = title
        self.notes = list(notes)
        self.rows = []

    def add(self, name, values, unit, reference=None):
        """Adds and prints a row; with a ``reference`` Row its ratio column reads
        ``<this median / reference median> x <reference name>``."""
        row = Row(name, list(values), unit)
        if reference is not None:
            row.ratio = f"{row.median / reference.median:.3g} x {reference.name}"
        self.rows.append(row)
        print(f"[{self.title}] {name}: {fmt(row.median)} {unit} "
              f"(min {fmt(min(row.values))}, max {fmt(max(row.values))}) {row.ratio}", flush=True)
        return row

    def markdown(self):
        """The table as markdown: a heading, the rows, then the notes as a list."""
        lines = [f"### {self.title}", "",
                 "| measurement | median | min | max | unit | ratio |",
                 "| --- | ---: | ---: | ---: | --- | --- |"]
        for row in self.rows:
            lines.append(f"| {row.name} | {fmt(row.median)} | {fmt(min(row.values))} | "
                         f"{fmt(max(row.values))} | {row.unit} | {row.ratio} |")
        lines += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def fmt(value):
    """Three significant digits, without exponents for the benchmark's usual magnitudes."""
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def print_and_write(text, path):
    """Prints a benchmark's markdown and, with a ``path`` (``--output``), writes it there."""
    print("\n" + text, flush=True)
    if path:
        with open(path, "w") as f:
            f.write(text)
        print(f"Written to {path}")
