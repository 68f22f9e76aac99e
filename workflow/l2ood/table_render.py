"""A table's rows as markdown, LaTeX and an HTML page for the report; the cells arrive as printed
text (l2ood.table_cells), ``groups`` are the top header row's (name, columns spanned)."""

import html


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * len(header)) + "|"]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows]) + "\n"


def _tex_escape(s) -> str:
    s = str(s).replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&")
    return s.replace("±", r"$\pm$")  # mean ± std cells


def latex_table(groups: list[tuple[str, int]], header: list[str], rows: list[list[str]], caption: str) -> str:
    top = " & ".join(rf"\multicolumn{{{n}}}{{c}}{{{_tex_escape(g)}}}" if n > 1 else _tex_escape(g) for g, n in groups)
    out = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{l{'c' * (len(header) - 1)}}}", r"\toprule"]
    out += [top + r" \\", " & ".join(_tex_escape(h) for h in header) + r" \\", r"\midrule"]
    out += [" & ".join(_tex_escape(c) for c in r) + r" \\" for r in rows]
    out += [r"\bottomrule", r"\end{tabular}", rf"\caption{{{_tex_escape(caption)}}}", r"\end{table}"]
    return "\n".join(out) + "\n"


def _header_groups(groups, header):
    """Each group with the header cells under it: [((group, n), [cells...]), ...]."""
    out, col = [], 0
    for g, n in groups:
        out.append(((g, n), header[col : col + n]))
        col += n
    return out


#: the HTML pages' styles, scoped to ``.l2ood-table`` (the report's home page includes the pages)
HTML_STYLE = (".l2ood-table{font-family:sans-serif;font-size:13px;margin:8px 0} .l2ood-table table{border-collapse:"
              "collapse;margin:6px 0} .l2ood-table th,.l2ood-table td{border:1px solid #bbb;padding:3px 6px;"
              "text-align:center} .l2ood-table td{white-space:nowrap} .l2ood-table td:first-child{text-align:left}"
              " .l2ood-table th{background:#eee} .l2ood-table p{max-width:60em}")  # fmt: skip


def html_table(groups: list[tuple[str, int]], header: list[str], rows) -> str:
    """One table as HTML: two header rows as the LaTeX; an "AUROC / FPR95" cell on two lines, so that a
    narrow page wraps between the numbers, not inside them."""
    esc = html.escape
    top = "".join(f'<th colspan="{n}">{esc(g)}</th>' if n > 1 else f'<th rowspan="2">{esc(g)}</th>' for g, n in groups)
    sub = "".join(f"<th>{esc(h)}</th>" for (g, n), hs in _header_groups(groups, header) if n > 1 for h in hs)
    body = "".join("<tr>" + "".join(f"<td>{'<br>'.join(map(esc, str(c).split(' / ')))}</td>" for c in r) + "</tr>\n"
                   for r in rows)  # fmt: skip
    return f"<table>\n<tr>{top}</tr>\n<tr>{sub}</tr>\n{body}</table>\n"


def html_page(title: str, caption: str, tables: list[str], note: str) -> str:
    """A table's HTML fragment for the report (a result, and inline on its home page): the caption
    above, the tables (``html_table``), the note below."""
    esc = html.escape
    return (f'<meta charset="utf-8"><style>{HTML_STYLE}</style>\n<div class="l2ood-table">\n'
            f"<p><b>{esc(title)}.</b> {esc(caption)}</p>\n{''.join(tables)}<p>{esc(note)}</p>\n</div>\n")  # fmt: skip
