"""The docs' link checker: every internal href/src of the built HTML resolves, and every `#anchor` exists."""
from __future__ import annotations

import posixpath
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit


class _LinkParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids, self.links = set(), []
    def handle_starttag(self, tag, attrs):
        d = dict(attrs)
        for k in ('id', 'name') if tag == 'a' else ('id',):
            if d.get(k): self.ids.add(d[k])
        for k in ('href', 'src'):
            if d.get(k) is not None and tag in ('a', 'link', 'img', 'script', 'iframe', 'source', 'video', 'audio', 'embed'):
                self.links.append((tag, k, d[k], self.getpos()[0]))


def check_links(site: Path, base: str = None) -> list[str]:
    """Every internal href/src in the HTML pages under `site` must resolve to a file there, and every `#anchor`
    must exist on its target page. Absolute links to the site's own URL (`base`) count as internal."""
    site = Path(site)
    pages = {}
    for f in sorted(site.rglob('*.html')):
        p = _LinkParser(); p.feed(f.read_text(encoding='utf-8')); p.close()
        pages[f.relative_to(site).as_posix()] = p
    files = {p.relative_to(site).as_posix() for p in site.rglob('*') if p.is_file()}
    errs = []
    for rel, p in pages.items():
        for tag, attr, url, line in p.links:
            if base and (url.startswith(base) or url.startswith(base.replace('https://', 'http://', 1))):
                errs.append(f"{rel}:{line}: absolute link to the site itself (should be relative): {url}"); continue
            sp = urlsplit(url)
            if sp.scheme or url.startswith('//'):
                if sp.scheme in ('http', 'https', 'mailto', 'data', 'javascript'): continue
                errs.append(f"{rel}:{line}: unexpected URL scheme: {url}"); continue
            path, frag = unquote(sp.path), unquote(sp.fragment)
            if path.startswith('/'): errs.append(f"{rel}:{line}: root-absolute link breaks under a base URL: {url}"); continue
            tgt = posixpath.normpath(posixpath.join(posixpath.dirname(rel), path)) if path else rel
            if tgt.startswith('..'): errs.append(f"{rel}:{line}: link leaves the site: {url}"); continue
            if tgt in files or tgt == '.': pass
            elif posixpath.join(tgt, 'index.html') in files: tgt = posixpath.join(tgt, 'index.html')
            else: errs.append(f"{rel}:{line}: <{tag} {attr}> target not found: {url}"); continue
            if frag and tgt.endswith('.html') and frag not in pages[tgt].ids:
                errs.append(f"{rel}:{line}: anchor #{frag} not found in {tgt}: {url}")
    return errs
