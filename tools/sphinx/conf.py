"""Sphinx configuration of the sparseface docs site.

`tools/build_docs.py` runs Sphinx with this file on the MyST notebooks it made from the nbdev-processed notebooks
(nothing is executed: the notebooks' saved outputs are rendered). Everything the pages load is local: furo's assets,
MathJax 3 (tools/vendor/mathjax) and the ipywidgets HTML manager (tools/vendor/html-manager).
"""
import configparser, sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TOOLS))                       # for docs_myst.slugify (heading anchors)
_cfg = configparser.ConfigParser()
_cfg.read(TOOLS.parent/'settings.ini')
_cfg = _cfg['DEFAULT']

project = html_title = _cfg.get('title', _cfg.get('lib_name'))
author, copyright = _cfg.get('author', ''), _cfg.get('copyright', '')
root_doc = 'index'
extensions = ['myst_nb', 'sphinx_design']

# notebooks: render saved outputs; Markdown outputs (e.g. show_doc) are MyST like the notebooks' own Markdown
nb_execution_mode = 'off'
nb_render_markdown_format = 'myst'
nb_merge_streams = True
nb_ipywidgets_js = {'html-manager/embed.js': {}}    # standalone embed.js: no require.js, no CDN
myst_enable_extensions = ['colon_fence', 'dollarmath', 'amsmath', 'attrs_inline', 'attrs_block']
myst_heading_anchors = 6                             # ids nbdev's doc links use (`core.html#check_type`)
myst_heading_slug_func = 'docs_myst.slugify'         # pandoc's algorithm, as Quarto
myst_dmath_double_inline = True

# math: vendored MathJax 3 with SVG output (TeX fonts as paths: no font files, nothing fetched)
# MathJax's components instead of the single 2.2 MB `tex-svg-full.js` (no tracked file over 2 MB): the loader
# (startup.js) loads core, the TeX input with every extension (input/tex-full) and the SVG output with its font
mathjax_path = 'mathjax/startup.js'
mathjax3_config = {'loader': {'load': ['input/tex-full', 'output/svg']}, 'svg': {'fontCache': 'global'}}

html_theme = 'furo'
html_theme_options = {'top_of_page_buttons': [], 'navigation_with_keys': True}
html_static_path = ['_static', str(TOOLS/'vendor')]  # vendor/ -> _static/mathjax/, _static/html-manager/
exclude_patterns = ['**/README.md']                # vendor notes stay in tools/ (licences are copied along)
html_css_files = ['sparseface.css']
html_js_files = ['sparseface.js']
html_favicon = '_static/favicon.svg'
html_copy_source = html_show_sourcelink = html_use_index = False
html_last_updated_fmt = None

# strict: tools/build_docs.py runs with -W --keep-going -n (warnings are errors, all reported at once)
nitpicky = True
suppress_warnings = ['myst.header']                  # headings may skip levels (show_doc's ### under a # title)
