"""A self-contained HTML page beside ``report.md``: same content, figures embedded as base64 PNG.

The report's Markdown is our own and uses a small subset (headings, pipe tables, images, bullet
lists, paragraphs, ``code`` and _emphasis_), so a short converter covers it without a Markdown
dependency. The page loads nothing from outside (no script, no style sheet, no image file), so it
opens the same from a mail attachment, a laptop or a cluster's file browser.

Check it renders (a headless browser, where one is installed)::

    chromium --headless --no-sandbox --disable-gpu --screenshot=report.png --window-size=1280,4000 file://$PWD/report.html
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

STYLE = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #aaa; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
th { background: #f0f0f0; } tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
code { background: #f4f4f4; padding: 0 3px; }
"""

_IMG = re.compile(r"^!\[(?P<alt>[^\]]*)\]\((?P<src>[^)]+)\)\s*$")


def _inline(text: str) -> str:
    t = html.escape(text, quote=False)
    t = re.sub(r"``?([^`]+)``?", r"<code>\1</code>", t)
    t = re.sub(r"(?<![\w])_([^_]+)_(?![\w])", r"<em>\1</em>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
    return t


def _cells(line: str) -> list[str]:
    body = line.strip().strip("|")
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", body)]


def _image(src: str, alt: str, base: Path) -> str:
    p = (base / src) if not Path(src).is_absolute() else Path(src)
    try:
        data = base64.b64encode(p.read_bytes()).decode("ascii")
    except OSError:
        return f"<p><em>(figure {html.escape(src)} not found)</em></p>"
    return f'<figure><img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"></figure>'


def markdown_to_html(md: str, base: Path, title: str = "dgl_ray report") -> str:
    """The report's Markdown as one self-contained HTML page (images from ``base`` embedded)."""
    out = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        s = line.strip()
        if not s:
            i += 1
            continue
        m = re.match(r"^(#{1,6})\s+(.*)$", s)
        if m:
            n = len(m.group(1))
            out.append(f"<h{n}>{_inline(m.group(2))}</h{n}>")
            i += 1
            continue
        m = _IMG.match(s)
        if m:
            out.append(_image(m.group("src"), m.group("alt"), base))
            i += 1
            continue
        if s.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-:| ]+\|$", lines[i + 1].strip()):
            head = _cells(s)
            rows = []
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            out.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head)
                       + "</tr></thead><tbody>"
                       + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rows)
                       + "</tbody></table>")
            continue
        if s.startswith("- "):
            items = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].strip()[2:])}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
            continue
        para = [s]
        i += 1
        while i < len(lines) and lines[i].strip() and not re.match(r"^(#|\||!\[|- )", lines[i].strip()):
            para.append(lines[i].strip())
            i += 1
        out.append(f"<p>{_inline(' '.join(para))}</p>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(out) + "\n</body></html>\n")


def write_html(md_path: str | Path, title: str | None = None) -> Path:
    """Write ``report.html`` beside ``md_path`` (``report.md``) and return its path."""
    md_path = Path(md_path)
    md = md_path.read_text()
    first = next((l[2:].strip() for l in md.splitlines() if l.startswith("# ")), "dgl_ray report")
    page = markdown_to_html(md, md_path.parent, title or first)
    out = md_path.with_suffix(".html")
    out.write_text(page, encoding="utf-8")
    return out
