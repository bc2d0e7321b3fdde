"""The course website: its configuration, its build, its links, and what a browser shows.

The site is built once per session (a few seconds: nothing is executed) into a temporary
folder. The browser tests open every page of the table of contents in a headless Chromium
(Debian's ``chromium``, driven by Playwright with the browser's path given explicitly), served
from 127.0.0.1, and save screenshots to ``build/screenshots/``. Without Chromium they are
skipped, except under CI (``CI=true``), where a missing browser is a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml

from tfpcourse import book, cli

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
CONFIG = yaml.safe_load((BOOK / "_config.yml").read_text(encoding="utf-8"))
PAGES = book.toc_files(BOOK)
CHAPTERS = book.chapter_files(BOOK)
SCREENSHOTS = ROOT / "build" / "screenshots"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")


# ---- configuration and table of contents (no build) ------------------------------------------


def test_every_chapter_notebook_is_in_the_toc():
    assert book.missing_chapters(BOOK, ROOT / "notebooks") == [], (
        "add the new chapter to book/_toc.yml (and to the learning path in book/intro.md)"
    )


def test_every_toc_entry_exists_and_chapters_are_the_committed_notebooks():
    for page in PAGES:
        assert (BOOK / f"{page}.md").is_file() or (BOOK / f"{page}.ipynb").is_file(), page
    assert CHAPTERS == sorted(CHAPTERS), "chapters must appear in the toc in their numbered order"
    assert (BOOK / "notebooks").is_symlink(), "book/notebooks must link to ../notebooks"
    assert (BOOK / "notebooks").resolve() == (ROOT / "notebooks").resolve()
    assert not list(BOOK.glob("*.ipynb")), "notebooks are not copied into book/"


def test_default_build_executes_nothing_and_the_option_uses_a_cache():
    assert CONFIG["execute"]["execute_notebooks"] == "off"
    executed = book.execute_config(BOOK)
    assert executed["execute"]["execute_notebooks"] == "cache"
    executed["execute"]["execute_notebooks"] = "off"
    assert executed == CONFIG  # nothing else differs


def test_repository_url_is_configured_once_and_drives_the_launch_buttons():
    url = CONFIG["repository"]["url"]
    assert re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url), url
    config_text = (BOOK / "_config.yml").read_text(encoding="utf-8")
    assert config_text.count(url) == 1, "the repository URL must be written once (a YAML anchor)"
    for page in BOOK.glob("*.md"):
        assert url not in page.read_text(encoding="utf-8"), f"{page.name} repeats the URL"
    buttons = CONFIG["launch_buttons"]
    assert buttons["colab_url"] and buttons["binderhub_url"]
    # Chapter pages are notebooks/NN.ipynb in the book and in the repository alike.
    assert CONFIG["repository"]["path_to_book"] == ""


def test_bibliography_has_the_works_the_course_relies_on():
    bib = (BOOK / "references.bib").read_text(encoding="utf-8")
    keys = re.findall(r"^@\w+\{([^,]+),", bib, re.M)
    expected = {
        "kingma2013vae", "rezende2015flows", "dinh2017realnvp", "papamakarios2017maf",
        "kingma2016iaf", "germain2015made", "burda2016iwae", "zhao2019infovae",
        "tomczak2018vampprior", "gretton2012mmd", "lecun1998mnist", "xiao2017fashion",
        "clanuwat2018kmnist", "hoffman2016elbo", "bowman2016sentences",
    }
    assert expected <= set(keys), expected - set(keys)
    assert len(keys) == len(set(keys)), "a key is defined twice"


def test_every_bibliography_entry_is_cited_somewhere():
    bib = (BOOK / "references.bib").read_text(encoding="utf-8")
    keys = re.findall(r"^@\w+\{([^,]+),", bib, re.M)
    sources = [*(ROOT / "notebooks").glob("*.py"), *BOOK.glob("*.md")]
    text = "\n".join(p.read_text(encoding="utf-8") for p in sources)
    cited = set(re.findall(r"\{cite:[pt]\}`([^`]+)`", text))
    cited = {key.strip() for group in cited for key in group.split(",")}
    assert set(keys) <= cited, f"never cited: {sorted(set(keys) - cited)}"


def test_intro_lists_all_seven_chapters_and_links_only_those_in_the_toc():
    intro = (BOOK / "intro.md").read_text(encoding="utf-8")
    for number in range(1, 8):
        assert re.search(rf"^(0{number} · |\{{doc\}}`notebooks/0{number}_)", intro, re.M), number
    linked = set(re.findall(r"\{doc\}`(notebooks/[^`]+)`", intro))
    assert linked == set(CHAPTERS)


# ---- tfpcourse.book helpers -------------------------------------------------------------------


@pytest.fixture
def tiny_book(tmp_path):
    root = tmp_path / "book"
    (root / "notebooks").mkdir(parents=True)
    (root / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: 'off'\n")
    (root / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nparts:\n  - caption: A\n    chapters:\n"
        "      - file: notebooks/01_a\n        sections:\n          - file: notebooks/02_b.ipynb\n"
    )
    for name in ("01_a", "02_b"):
        nbformat.write(nbformat.v4.new_notebook(), root / "notebooks" / f"{name}.ipynb")
    return root


def test_toc_files_walks_parts_chapters_and_sections_in_order(tiny_book):
    assert book.toc_files(tiny_book) == ["intro", "notebooks/01_a", "notebooks/02_b"]
    assert book.chapter_files(tiny_book) == ["notebooks/01_a", "notebooks/02_b"]
    assert book.missing_chapters(tiny_book) == []


def test_a_chapter_missing_from_the_toc_stops_the_build(tiny_book):
    nbformat.write(nbformat.v4.new_notebook(), tiny_book / "notebooks" / "03_c.ipynb")
    assert [p.name for p in book.missing_chapters(tiny_book)] == ["03_c.ipynb"]
    with pytest.raises(book.BookError, match=r"03_c\.ipynb"):
        book.build(tiny_book, tiny_book / "out")


def test_build_command_treats_warnings_as_errors_and_rebuilds_everything(tiny_book, tmp_path):
    command = book.build_command(tiny_book, tmp_path / "out", config=tmp_path / "c.yml")
    assert Path(command[0]).name.startswith("jupyter-book") and command[1] == "build"
    assert {"-W", "-n", "--keep-going", "--all"} <= set(command)
    assert command[command.index("--path-output") + 1] == str(tmp_path / "out")
    assert command[command.index("--config") + 1] == str(tmp_path / "c.yml")
    assert book.html_dir(tmp_path / "out") == tmp_path / "out" / "_build" / "html"


def test_book_helpers_reject_bad_arguments(tmp_path, tiny_book):
    with pytest.raises(TypeError, match="book_dir"):
        book.toc_files(42)
    with pytest.raises(book.BookError, match=r"_config\.yml"):
        book.toc_files(tmp_path)
    with pytest.raises(TypeError, match="execute"):
        book.build(tiny_book, execute="yes")
    (tiny_book / "_toc.yml").write_text("format: jb-book\n")
    with pytest.raises(book.BookError, match="root"):
        book.toc_files(tiny_book)


def test_unique_scripts_drops_repeated_inline_scripts_only():
    from sphinx.builders.html._assets import _JavaScript

    body = 'const THEBE_JS_URL = "x"'
    scripts = [_JavaScript("_static/a.js"), _JavaScript(None, body=body),
               _JavaScript("", body=body), _JavaScript("", body="other"),
               _JavaScript("_static/a.js", **{"async": "async"}), "_static/b.js", "_static/b.js"]
    unique = book.unique_scripts(scripts)
    assert unique == [scripts[0], scripts[1], scripts[3], scripts[4], scripts[5]]
    assert book.unique_scripts([]) == []
    with pytest.raises(TypeError, match="scripts"):
        book.unique_scripts(tuple(scripts))


def test_book_command_reports_a_folder_without_a_book(tmp_path, capsys):
    assert cli.main(["book", "--book-dir", str(tmp_path)]) == 2
    assert "Cannot build the book" in capsys.readouterr().err


def test_book_command_passes_its_options_on(monkeypatch, tmp_path, capsys):
    calls = []

    def fake_build(book_dir, output_dir, **kwargs):
        calls.append((book_dir, output_dir, kwargs))
        html = tmp_path / "_build" / "html"
        return book.BookBuild(returncode=1, seconds=0.5, html=html, index=html / "index.html",
                              pages=())

    monkeypatch.setattr(book, "build", fake_build)
    assert cli.main(["book", "--execute", "--output-dir", str(tmp_path)]) == 1
    assert calls == [("book", str(tmp_path), {"execute": True, "quiet": True})]
    assert "FAILED" in capsys.readouterr().err


@pytest.mark.slow
def test_execute_runs_the_notebooks_with_a_cache_and_leaves_them_unchanged(tiny_book, tmp_path):
    nb_path = tiny_book / "notebooks" / "01_a.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# A"), nbformat.v4.new_code_cell("print(6 * 7)")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, nb_path)
    before = nb_path.read_bytes()
    (tiny_book / "intro.md").write_text("# Intro\n")
    (tiny_book / "notebooks" / "02_b.ipynb").write_text(nb_path.read_text())
    result = book.build(tiny_book, tmp_path / "out", execute=True, capture=True)
    assert result.ok, result.log[-2000:]
    html = (result.html / "notebooks" / "01_a.html").read_text(encoding="utf-8")
    assert re.search(r"<pre>(<span></span>)?42\s*</pre>", html), "the cell was not executed"
    assert (tmp_path / "out" / "_build" / ".jupyter_cache").is_dir()
    assert nb_path.read_bytes() == before  # executed for the site only


# ---- the build ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> book.BookBuild:
    # A chapter missing from the toc fails test_every_chapter_notebook_is_in_the_toc, on its
    # own; the site of the listed chapters is still built and checked.
    result = book.build(BOOK, tmp_path_factory.mktemp("book"), capture=True, check_toc=False)
    print(f"\nbook built in {result.seconds:.1f} s: {len(result.pages)} pages")
    return result


def test_book_builds_with_no_warning(site):
    assert site.ok, f"jupyter-book exited with {site.returncode}:\n{site.log[-3000:]}"
    problems = [ln for ln in site.log.splitlines() if re.search(r"warning|error", ln, re.I)]
    assert not problems, "\n".join(problems)
    assert site.pages == tuple(f"{p}.html" for p in PAGES)


def test_the_command_prints_where_the_site_is(monkeypatch, capsys, site):
    monkeypatch.setattr(book, "build", lambda *a, **k: site)
    assert cli.main(["book"]) == 0
    out = capsys.readouterr().out
    assert f"Site: {site.index.resolve()}" in out and f"Built {len(PAGES)} pages" in out


class _Page(HTMLParser):
    """Collects a page's ids and the URLs of its links and embedded resources."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.links: list[tuple[str, str]] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.links.append((tag, attrs[key]))


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_every_internal_link_and_anchor_resolves(site):
    # Every page of the site (theme templates under _static are not pages).
    pages = {
        p.resolve(): _parse(p)
        for p in site.html.rglob("*.html")
        if "_static" not in p.relative_to(site.html).parts
    }
    broken = []
    for path, page in pages.items():
        for tag, url in page.links:
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or url.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = path if not parts.path else (path.parent / unquote(parts.path)).resolve()
            if not target.is_relative_to(site.html.resolve()):
                broken.append(f"{path.relative_to(site.html.resolve())}: {url} (outside the site)")
                continue
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{path.relative_to(site.html.resolve())}: <{tag}> {url}")
            elif parts.fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if unquote(parts.fragment) not in ids:
                    broken.append(f"{path.relative_to(site.html.resolve())}: {url} (no anchor)")
    assert not broken, "\n".join(broken)


def test_pages_load_nothing_from_the_internet_and_mathjax_is_part_of_the_site(site):
    for name in site.pages:
        page = _parse(site.html / name)
        for tag, url in page.links:
            if tag in ("script", "img", "iframe", "link", "source", "embed", "video", "audio"):
                assert not urlsplit(url).netloc, f"{name} loads {url}"
    chapter = _parse(site.html / f"{CHAPTERS[0]}.html")
    mathjax = [u for t, u in chapter.links if t == "script" and "mathjax" in u.lower()]
    assert mathjax, "no MathJax script on a chapter page"
    script = (site.html / CHAPTERS[0]).parent / mathjax[0]
    assert script.resolve().is_file(), mathjax[0]
    fonts = site.html / "_static" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert len(list(fonts.glob("*.woff"))) > 10


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_has_launch_and_download_links_from_the_one_repository_url(site, chapter):
    html = (site.html / f"{chapter}.html").read_text(encoding="utf-8")
    url = CONFIG["repository"]["url"]
    owner_repo = urlsplit(url).path.strip("/")
    branch = CONFIG["repository"]["branch"]
    notebook = f"{chapter}.ipynb"
    assert (ROOT / notebook).is_file()  # the launch links point at this repository path
    colab = f"{CONFIG['launch_buttons']['colab_url']}/github/{owner_repo}/blob/{branch}/{notebook}"
    binder = f"{CONFIG['launch_buttons']['binderhub_url']}/v2/gh/{owner_repo}/{branch}?urlpath="
    assert f'href="{colab}"' in html
    assert re.search(rf'href="{re.escape(binder)}[\w/]*tree/{re.escape(notebook)}"', html)
    assert f'href="{url}"' in html  # the repository button
    download = f'href="../_sources/{notebook}"'
    assert download in html, "no .ipynb download link"
    stored = nbformat.read(site.html / "_sources" / notebook, as_version=4)
    assert stored.cells == nbformat.read(ROOT / notebook, as_version=4).cells


def test_cross_references_glossary_and_citations_are_rendered(site):
    ch02 = _parse(site.html / "notebooks" / "02_distributions.html")
    assert {"kl-divergence", "elbo", "shapes"} <= ch02.ids
    ch04 = (site.html / "notebooks" / "04_normalizing_flows.html").read_text(encoding="utf-8")
    assert 'href="02_distributions.html#elbo"' in ch04
    assert 'href="03_bijectors.html#change-of-variables"' in ch04
    glossary = _parse(site.html / "glossary.html")
    terms = {i for i in glossary.ids if i.startswith("term-")}
    assert len(terms) >= 15
    for term in ("term-batch-shape", "term-event-shape", "term-bijector", "term-log-det-Jacobian",
                 "term-ELBO", "term-KL-divergence"):
        assert term in terms, term
    for chapter in CHAPTERS:
        html = (site.html / f"{chapter}.html").read_text(encoding="utf-8")
        assert "../glossary.html#term-" in html, f"{chapter} links no glossary term"
    references = (site.html / "references.html").read_text(encoding="utf-8")
    bib = (BOOK / "references.bib").read_text(encoding="utf-8")
    assert references.count('role="doc-biblioentry"') == len(re.findall(r"^@\w+\{", bib, re.M))
    cited = (site.html / "notebooks" / "04_normalizing_flows.html").read_text(encoding="utf-8")
    assert "../references.html#" in cited and "Papamakarios" in cited


# ---- the browser -------------------------------------------------------------------------------


def _chromium() -> str | None:
    explicit = os.environ.get("TFPCOURSE_CHROMIUM")
    if explicit:
        return explicit
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium)")
    pytest.skip(f"{reason}: install it (apt-get install chromium) to run the browser tests")


@pytest.fixture(scope="session")
def server(site):
    handler = functools.partial(_QuietHandler, directory=str(site.html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="session")
def browser():
    executable = _chromium()
    if executable is None:
        _unavailable("no Chromium found (chromium, chromium-browser or $TFPCOURSE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed (pip install -e '.[book]')")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        yield chromium
        chromium.close()


def _expected_title(page: str) -> str:
    """The page's own title (its first heading), as the site shows it."""
    if page.startswith("notebooks/"):
        nb = nbformat.read(BOOK / f"{page}.ipynb", as_version=4)
        source = next(c.source for c in nb.cells if c.cell_type == "markdown")
    else:
        source = (BOOK / f"{page}.md").read_text(encoding="utf-8")
    heading = next(ln for ln in source.splitlines() if ln.startswith("# "))
    return f"{heading[2:].strip()} — {CONFIG['title']}"


_PAGE_REPORT = """() => {
  const main = document.querySelector('main') || document.body;
  const maths = [...main.querySelectorAll('.math')];
  return {
    title: document.title,
    images: [...document.images].map(
      i => ({src: i.getAttribute('src'), ok: i.complete && i.naturalWidth > 0})),
    outputImages: main.querySelectorAll('.cell_output img').length,
    mathElements: maths.length,
    untypeset: maths.filter(m => !m.querySelector('mjx-container'))
                    .map(m => m.textContent.slice(0, 80)),
    rendered: main.querySelectorAll('mjx-container').length,
    mathErrors: main.querySelectorAll('mjx-merror').length,
    rawDisplayMath: main.innerText.includes('$$'),
    cellInputs: main.querySelectorAll('div.cell_input').length,
    cellOutputs: main.querySelectorAll('div.cell_output').length,
    stderr: main.querySelectorAll('.output.stderr').length,
    figureReprs: (main.innerText.match(/<Figure size \\d+x\\d+ with \\d+ Axes>/g) || []).length,
    next: (document.querySelector('a.right-next') || {}).href || null,
    mathjaxFonts: [...document.fonts]
      .filter(f => f.family.startsWith('MJX') && f.status === 'loaded').length,
  };
}"""


def _shot(pg, name: str, selector: str | None = None) -> Path | None:
    """A screenshot of the viewport, scrolled so that ``selector``'s first match is centred."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if selector is not None:
        found = pg.evaluate(
            """s => { const e = document.querySelector(s);
                      if (e) e.scrollIntoView({block: 'center'}); return !!e; }""",
            selector,
        )
        if not found:
            return None
        pg.wait_for_timeout(150)
    path = SCREENSHOTS / f"{name}.png"
    pg.screenshot(path=str(path))
    return path


@pytest.mark.parametrize("index", range(len(PAGES)), ids=[p.split("/")[-1] for p in PAGES])
def test_page_in_a_real_browser(browser, server, index):
    page = PAGES[index]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    offsite: list[str] = []
    fonts: list[str] = []
    pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    pg.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
    pg.on("response", lambda r: errors.append(f"HTTP {r.status}: {r.url}") if r.status >= 400
          else None)

    def on_request(request):
        if not request.url.startswith(server):
            offsite.append(request.url)
        elif request.url.endswith(".woff"):
            fonts.append(request.url)

    pg.on("request", on_request)
    try:
        pg.goto(f"{server}/{page}.html", wait_until="load")
        has_math = pg.evaluate("() => !!window.MathJax")
        if has_math:
            pg.wait_for_function("() => window.MathJax.startup && window.MathJax.startup.promise")
            pg.evaluate("() => MathJax.startup.promise")
            pg.evaluate("() => document.fonts.ready.then(() => true)")
        report = pg.evaluate(_PAGE_REPORT)
        name = page.replace("notebooks/", "")
        assert _shot(pg, name).is_file()
        _shot(pg, f"{name}-math", "main div.math")
        _shot(pg, f"{name}-figure", "main .cell_output img")

        assert not offsite, f"requests that left 127.0.0.1: {offsite}"
        assert report["title"] == _expected_title(page)
        broken = [i["src"] for i in report["images"] if not i["ok"]]
        assert not broken, f"images that did not load: {broken}"
        assert not report["untypeset"], f"math left untypeset: {report['untypeset'][:3]}"
        assert report["mathErrors"] == 0 and not report["rawDisplayMath"]
        if report["mathElements"]:
            assert report["rendered"] >= report["mathElements"]
            assert fonts and report["mathjaxFonts"] > 0, "MathJax fonts did not load from the site"

        if page in CHAPTERS:
            nb = nbformat.read(BOOK / f"{page}.ipynb", as_version=4)
            code = [c for c in nb.cells if c.cell_type == "code"]
            assert report["cellInputs"] == len(code)
            assert report["cellOutputs"] == sum(1 for c in code if c.outputs)
            assert report["outputImages"] > 0 and report["rendered"] > 0
            assert report["stderr"] == 0 and report["figureReprs"] == 0
        if index + 1 < len(PAGES):
            following = PAGES[index + 1]
            assert report["next"] == f"{server}/{following}.html"
            pg.click("a.right-next")
            pg.wait_for_load_state("load")
            assert pg.url == f"{server}/{following}.html"
            assert pg.title() == _expected_title(following)
        else:
            assert report["next"] is None
        assert not errors, "\n".join(errors)
    finally:
        context.close()
