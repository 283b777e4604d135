"""Pages as blocks (headings, paragraphs, images, tables) rendered to markdown or to HTML.

The review pages are built once as blocks and rendered twice: markdown for Prefect artifacts
(images as data URIs) and HTML for the static report (images as files beside the page).
Formatting only: no store, no dataset.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Block",
    "Cell",
    "Code",
    "Heading",
    "Image",
    "Inline",
    "Link",
    "Para",
    "Table",
    "data_uri",
    "html_inline",
    "md_inline",
    "render_html",
    "render_markdown",
]


@dataclass(frozen=True)
class Code:
    text: str


@dataclass(frozen=True)
class Link:
    text: str
    href: str


Inline = str | Code | Link
Cell = Inline | tuple[Inline, ...]


@dataclass(frozen=True)
class Heading:
    level: int
    text: tuple[Inline, ...]


@dataclass(frozen=True)
class Para:
    text: tuple[Inline, ...]


@dataclass(frozen=True)
class Image:
    alt: str
    path: Path


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


Block = Heading | Para | Image | Table



_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#])")


def md_inline(parts: Cell) -> str:
    def escape(text: str) -> str:
        return _MD_SPECIAL.sub(r"\\\1", text)

    out = []
    for part in parts if isinstance(parts, tuple) else (parts,):
        if isinstance(part, Code):
            out.append("`" + part.text.replace("`", "'") + "`")
        elif isinstance(part, Link):
            out.append(f"[{escape(part.text)}]({part.href})")
        else:
            out.append(escape(part))
    return "".join(out).replace("\n", " ")


def html_inline(parts: Cell) -> str:
    out = []
    for part in parts if isinstance(parts, tuple) else (parts,):
        if isinstance(part, Code):
            out.append(f"<code>{html.escape(part.text)}</code>")
        elif isinstance(part, Link):
            out.append(f'<a href="{html.escape(part.href)}">{html.escape(part.text)}</a>')
        else:
            out.append(html.escape(part))
    return "".join(out)


def render_markdown(blocks: Sequence[Block], src: Callable[[Path], str]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines.append(f"{'#' * block.level} {md_inline(block.text)}")
        elif isinstance(block, Para):
            lines.append(md_inline(block.text))
        elif isinstance(block, Image):
            lines.append(f"![{block.alt}]({src(block.path)})")
        else:
            lines.append("| " + " | ".join(block.header) + " |")
            lines.append("|" + "---|" * len(block.header))
            lines.extend("| " + " | ".join(md_inline(c) for c in row) + " |" for row in block.rows)
        lines.append("")
    return "\n".join(lines)


_CSS = (
    "body{font-family:sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 8px;"
    "text-align:left;font-size:90%}th{background:#f3f3f3}img{max-width:100%;border:1px solid #ddd}"
    "code{background:#f3f3f3;padding:0 3px}td a,td code{white-space:nowrap}"
)


def render_html(title: str, blocks: Sequence[Block], src: Callable[[Path], str], nav: str = "") -> str:
    body = [nav] if nav else []
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html_inline(block.text)}</h{block.level}>")
        elif isinstance(block, Para):
            body.append(f"<p>{html_inline(block.text)}</p>")
        elif isinstance(block, Image):
            body.append(f'<p><img src="{html.escape(src(block.path))}" alt="{html.escape(block.alt)}"></p>')
        else:
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.header)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html_inline(c)}</td>" for c in row) + "</tr>" for row in block.rows
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def data_uri(path: Path) -> str:
    mime = "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()
